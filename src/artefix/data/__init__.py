"""Data access: scan readers and writers (:mod:`artefix.data.io`) and the built-in sample slices."""
