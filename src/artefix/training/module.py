r"""LightningModule: the dual-domain model, the multi-task loss, the optimiser and validation metrics.

Training minimises the multi-task loss of Eq. 6,

.. math:: L = \sum_k \delta_k\,\mathrm{MSE}\bigl(I_k * v,\; I_k * \mathrm{Znorm}(u + p_y)\bigr)
    + \alpha \sum_i \overline{p_i^2},

where only the residual ``p_y`` of the artefact applied to each slice enters the first term
(:class:`artefix.losses.MultiTaskLoss`). Validation runs the model as at inference (all residuals added,
``v_hat = Znorm(u + sum_i p_i)``) and reports, per epoch, the mean over validation slices of

* ``val/mse`` = mean((v_hat - v)^2) on the Z-normalised images (early stopping and tuning monitor it),
* ``val/ssim`` and ``val/vif`` (:mod:`artefix.evaluation.metrics`, on the CPU, when enabled),
* each of them per artefact (``val/mse/bias``, ...; ``val/mse/none`` for the slices left clean with
  ``data.clean_fraction``), and the loss (``val/loss``).

With ``model.init`` the network starts from trained weights
(:func:`artefix.models.checkpoint.transfer_weights`); a slice left clean (label ``-1``) selects no head in
Eq. 6, so only the ``loss.all_heads`` term (and the regulariser) teaches the model to leave it alone.

With ``loss.fit_gates`` (a gate-calibration stage for a trained model with frozen branches) the loss is
instead the batch mean of ``log(L(v, Znorm(u + sum_i g_i p_i)) + loss.gate_floor)`` with the residuals ``p``
fixed as shipped and only the detector's scores ``g`` learning (``L``: the training criterion, or with
``loss.gate_criterion: quality`` the per-slice ``(1 - SSIM) + (1 - VIF)``).

Sums and counts are reduced over all processes before the means are taken, so the numbers are exact
under data-parallel training (up to the few slices a distributed sampler repeats to even out ranks).
"""

from __future__ import annotations

import json
from typing import Any

import lightning as L
import numpy as np
import torch

from artefix.artefacts.base import znorm
from artefix.data.dataset import NO_ARTEFACT, TrainingSample
from artefix.losses import MultiTaskLoss, MultiTaskLossOutput, quality_deficit
from artefix.models import ALL_HEADS, DualDomainModel, ModelOutput, apply_residuals, build_model
from artefix.training.config import TrainConfig

__all__ = ["ArtefactCorrectionModule"]


def _float32_output(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
    """Forward hook: the output in float32 (a no-op in full precision)."""
    return output.float()


class ArtefactCorrectionModule(L.LightningModule):
    """Trains a :class:`~artefix.models.DualDomainModel` on :class:`~artefix.data.dataset.TrainingSample` batches.

    Args:
        config: The training configuration (model, loss, optimizer, data.artefacts and
            trainer.val_metrics are used).

    Attributes:
        model: The network; its weights are what :mod:`artefix.training.callbacks` exports.
        criterion: The multi-task loss.
    """

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        self.config = config
        self.model: DualDomainModel = build_model(
            config.model.preset,
            seed=config.model_seed,
            heads=config.model.head_names,
            gates=config.model.gates,
        )
        self.model.policy = config.model.policy
        if self.model.kspace_branch is not None:
            # Mixed precision: the k-space branch's output feeds torch.complex and an inverse FFT, which
            # need float32 (no bfloat16 complex; half-precision FFTs only for powers of two on CUDA).
            self.model.kspace_branch.register_forward_hook(_float32_output)
        self.criterion = MultiTaskLoss(deltas=config.loss.delta_values, alpha=config.loss.alpha)
        heads = self.model.head_names
        head_map = torch.tensor([heads.index(h) if h in heads else -1 for h in ALL_HEADS], dtype=torch.int64)
        self.register_buffer("head_map", head_map, persistent=False)
        if config.model.init is not None:
            self._start_from(config.model.init)
        for module in self.model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.momentum = config.optimizer.bn_momentum
        self._frozen: list[torch.nn.Module] = []
        for name in config.model.freeze:
            part = getattr(self.model, name)
            if part is None:
                raise ValueError(f"model.freeze names {name!r} but the model has none (model.branches)")
            part.requires_grad_(False)
            self._frozen.append(part)
        if config.loss.fit_gates:
            branches = {n for n in ("image_branch", "kspace_branch") if getattr(self.model, n) is not None}
            frozen = set(config.model.freeze)
            if self.model.detector is None or not branches <= frozen or "detector" in frozen:
                raise ValueError(
                    "loss.fit_gates trains only the detector: it needs model.gates and model.freeze naming "
                    f"{' and '.join(sorted(branches))} (not the detector)"
                )
        if not any(p.requires_grad for p in self.model.parameters()):
            raise ValueError("model.freeze leaves nothing to train")
        self.artefacts: tuple[str, ...] = config.data.artefacts + (("none",) if config.data.clean_fraction else ())
        self.metric_names: tuple[str, ...] = config.trainer.val_metrics
        self._sums: torch.Tensor | None = None

    def _start_from(self, init: str) -> None:
        from artefix.models.checkpoint import load_model, transfer_weights
        from artefix.models.registry import resolve_model

        source, _ = load_model(resolve_model(init), verify=True)
        mine = self.model.config
        if source.config.replace(heads=mine.heads, gates=mine.gates) != mine:
            raise ValueError(f"model.init {init!r} has another architecture than preset {self.config.model.preset!r}")
        transfer_weights(self.model, source)

    def train(self, mode: bool = True) -> ArtefactCorrectionModule:
        """Switch training mode; frozen parts (``model.freeze``) stay in eval mode (fixed batch-norm statistics)."""
        super().train(mode)
        for part in self._frozen:
            part.eval()
        return self

    def forward(self, x: torch.Tensor) -> Any:
        """The model's :class:`~artefix.models.ModelOutput` for ``x`` of shape ``(B, 1, H, W)``."""
        return self.model(x)

    def _gate_fit_loss(self, batch: TrainingSample) -> tuple[Any, torch.Tensor]:
        """``loss.fit_gates``: mean log-criterion of ``Znorm(u + sum_i g_i p_i)`` with the residuals ``p`` fixed."""
        training = self.training
        self.train(False)  # p as at inference: physics priors on (frozen branches are in eval mode anyway)
        with torch.no_grad():
            fixed = self.model.ungated_residuals(batch.corrupted)
        self.train(training)
        gates = self.model.gate_scores(batch.corrupted)
        output = apply_residuals(batch.corrupted, gates[:, :, None, None] * fixed, None, self.model.head_names)
        reference = znorm(batch.clean)
        if self.config.loss.gate_criterion == "quality":
            per_slice = quality_deficit(output, reference).clamp(min=0.0)
        else:
            pairs = zip(output, reference, strict=True)
            per_slice = torch.stack([self.criterion.criterion(o[None], r[None]) for o, r in pairs])
        total = torch.log(per_slice + self.config.loss.gate_floor).mean()
        return MultiTaskLossOutput(total, total, total.new_zeros(())), output

    def _loss(self, batch: TrainingSample) -> tuple[Any, torch.Tensor]:
        if self.config.loss.fit_gates:
            return self._gate_fit_loss(batch)
        index = self._applied_heads(batch.artefact) if len(self.model.head_names) > 1 else None
        quiet = self.config.loss.quiet_heads if self.training and self.model.detector is not None else 0.0
        quiet = quiet if index is not None else 0.0
        if quiet > 0:
            ungated = self.model.ungated_residuals(batch.corrupted)
            gated = self.model.gate_scores(batch.corrupted)[:, :, None, None] * ungated
            out = ModelOutput(apply_residuals(batch.corrupted, gated, None, self.model.head_names), gated)
        else:
            out = self.model(batch.corrupted)
        loss = self.criterion(batch.clean, batch.corrupted, out.residuals, index)
        if quiet > 0:
            absent = (~index).to(ungated.dtype)[:, :, None, None]
            penalty = quiet * (absent * ungated.square()).mean()
            loss = loss._replace(total=loss.total + penalty, regulariser=loss.regulariser + penalty)
        weight = self.config.loss.all_heads
        if weight > 0 and index is not None:
            every = torch.ones_like(out.residuals[:, :, 0, 0])
            extra = weight * self.criterion(batch.clean, batch.corrupted, out.residuals, every).reconstruction
            loss = loss._replace(total=loss.total + extra, reconstruction=loss.reconstruction + extra)
        if self.config.loss.detection > 0 and self.model.detector is not None:
            loss = loss._replace(total=loss.total + self.config.loss.detection * self._detection_loss(batch))
        return loss, out.output

    def _applied_heads(self, label: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` boolean: the model head that corrects each slice's artefact (none for a clean slice)."""
        heads = self.head_map[label.clamp_min(0)]
        arange = torch.arange(len(self.model.head_names), device=heads.device)
        return (heads[:, None] == arange) & (label != NO_ARTEFACT)[:, None]

    def _detection_loss(self, batch: TrainingSample) -> torch.Tensor:
        """Binary cross-entropy of the detector's scores against the one-hot applied artefact."""
        scores = self.model.detect(batch.corrupted).float().clamp(1e-6, 1 - 1e-6)
        target = self._applied_heads(batch.artefact).float()
        # written out (not F.binary_cross_entropy) so that it also runs under mixed-precision autocast
        return -(target * scores.log() + (1 - target) * (1 - scores).log()).mean()

    def training_step(self, batch: TrainingSample, batch_idx: int) -> torch.Tensor:
        """One optimisation step's loss; logs ``train/loss`` (+ reconstruction and regulariser)."""
        loss, _ = self._loss(batch)
        size = batch.corrupted.shape[0]
        self.log("train/loss", loss.total, prog_bar=True, on_step=True, on_epoch=True, batch_size=size)
        self.log("train/reconstruction", loss.reconstruction, on_epoch=True, batch_size=size)
        self.log("train/regulariser", loss.regulariser, on_epoch=True, batch_size=size)
        return loss.total

    def on_validation_epoch_start(self) -> None:
        """Reset the metric sums: shape ``(metrics + 1, artefacts)``, the last row counts slices."""
        shape = (len(self.metric_names) + 1, len(self.artefacts))
        self._sums = torch.zeros(shape, dtype=torch.float64, device=self.device)

    def validation_step(self, batch: TrainingSample, batch_idx: int) -> None:
        """Accumulate loss, MSE, SSIM and VIF per artefact for the validation slices of ``batch``."""
        from artefix.evaluation.metrics import ssim, vif

        loss, output = self._loss(batch)
        size = batch.corrupted.shape[0]
        self.log("val/loss", loss.total, on_epoch=True, sync_dist=True, batch_size=size)
        values = {"mse": ((output.float() - batch.clean.float()) ** 2).mean(dim=(1, 2, 3)).double()}
        if "ssim" in self.metric_names or "vif" in self.metric_names:
            ref = batch.clean[:, 0].float().cpu().numpy().astype(np.float64)
            img = output[:, 0].detach().float().cpu().numpy().astype(np.float64)
            for name, fn in (("ssim", ssim), ("vif", vif)):
                if name in self.metric_names:
                    scores = [fn(r, i) for r, i in zip(ref, img, strict=True)]
                    values[name] = torch.tensor(scores, dtype=torch.float64, device=self.device)
        which = torch.tensor(
            [self.artefacts.index(json.loads(p)["artefact"]) for p in batch.params], device=self.device
        )
        onehot = torch.nn.functional.one_hot(which, len(self.artefacts)).to(torch.float64)
        rows = [values[name] for name in self.metric_names]
        rows.append(torch.ones(size, dtype=torch.float64, device=self.device))
        assert self._sums is not None
        self._sums += torch.stack(rows) @ onehot

    def on_validation_epoch_end(self) -> None:
        """Reduce the sums over processes and log the means (overall and per artefact)."""
        if self._sums is None:
            return
        sums = self.trainer.strategy.reduce(self._sums, reduce_op="sum") if self.trainer.world_size > 1 else self._sums
        counts = sums[-1]
        total = counts.sum().clamp_min(1.0)
        for row, name in enumerate(self.metric_names):
            self.log(f"val/{name}", (sums[row].sum() / total).float(), prog_bar=name == "mse", sync_dist=True)
            for col, artefact in enumerate(self.artefacts):
                if counts[col] > 0:
                    value = (sums[row, col] / counts[col]).float()
                    self.log(f"val/{name}/{artefact}", value, sync_dist=True)
        self.log("val/slices", counts.sum().float(), sync_dist=True)
        for col, artefact in enumerate(self.artefacts):
            if counts[col] > 0:
                self.log(f"val/slices/{artefact}", counts[col].float(), sync_dist=True)
        self._sums = None

    def configure_optimizers(self) -> Any:
        """RMSprop or Adam with ``lr = 10 ** optimizer.log10_lr`` (PyTorch defaults otherwise).

        The detector's parameters (if any) use ``lr * optimizer.detector_lr_scale``; frozen parts
        (``model.freeze``) are left out. With
        ``optimizer.schedule: cosine`` also a per-epoch cosine decay to 0 at ``trainer.max_epochs``.
        """
        opt = self.config.optimizer
        cls = torch.optim.RMSprop if opt.name == "rmsprop" else torch.optim.Adam
        detector = self.model.detector
        trunk = [p for n, p in self.model.named_parameters() if not n.startswith("detector.") and p.requires_grad]
        groups: list[dict[str, Any]] = [{"params": trunk}] if trunk else []
        if detector is not None and any(p.requires_grad for p in detector.parameters()):
            groups.append({"params": list(detector.parameters()), "lr": opt.lr * opt.detector_lr_scale})
        optimizer = cls(groups, lr=opt.lr, weight_decay=opt.weight_decay)
        if opt.schedule == "constant":
            return optimizer
        epochs = max(1, self.config.trainer.max_epochs)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
