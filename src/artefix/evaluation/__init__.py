"""Evaluation of artefact corrections: image-quality metrics, classical baselines and statistics.

The paper (Simko et al. 2023) compares every correction on z-normalised slices with SSIM, pixel-domain
VIF and MSE, reports mean +- standard error over test slices, and marks in bold the best method and all
methods not significantly different from it (Friedman test, Nemenyi post-hoc, threshold 0.05).

Submodules (imported on demand, nothing heavy is loaded here):

* :mod:`artefix.evaluation.metrics`: ``ssim``, ``vif``, ``vif_paper``, ``vifp``, ``mse``, ``psnr``,
  ``foreground_mask``, ``compute_metrics`` and the ``METRICS`` orientation table.
* :mod:`artefix.evaluation.baselines`: the classical methods per experiment (N4ITK, zero-filled,
  bicubic, TV super-resolution, TV denoising, curvature anisotropic diffusion, BM3D), each in the
  paper's setting and in a tuned variant, the paper's implicitly trained bias CNN (``bfc``), and the
  ``BASELINES`` registry.
* :mod:`artefix.evaluation.stats`: ``friedman``, ``nemenyi``, ``bold_group`` and ``summarise``.
"""
