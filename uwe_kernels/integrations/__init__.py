"""Adapters that plug uwe_kernels into active-learning frameworks.

One module per framework, each importing its framework when imported itself (importing
uwe_kernels never does):

* ``uwe_kernels.integrations.modal``: modAL query strategies (``uwe_strategy``,
  ``badge_strategy``, ``coreset_strategy``).
* ``uwe_kernels.integrations.skactiveml``: scikit-activeml query strategies (``UWE``,
  ``CoreSet``, ``Badge``).
* ``uwe_kernels.integrations.small_text``: small-text query strategies (``UWE``,
  ``Coreset``, ``Badge``).
* ``uwe_kernels.integrations.baal``: baal heuristics (``UWE`` with BALD weighting,
  ``CoreSet``, ``Badge``).

Each adapter only calls the public API, so its picks are exactly those of calling
``uwe_kernels`` on the same probabilities and features.
"""
