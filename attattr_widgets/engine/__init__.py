"""Kernel-side engines (torch + transformers; never imports widgets, demo, plots, export, batch or cli).

``model/`` what a model is asked (one adapter per kind of task, encoding, examples, batched prediction) · ``intercept/`` the only code
that touches transformers' ``AttentionInterface`` (sessions, layout discovery, private copies) ·
``attribution/`` AttAttr itself · ``results/`` typed, saveable results · ``analysis/`` head importance, pruning,
trees, triggers · ``backends/`` where dataset-level work runs (in process or Ray) · ``quadrature``,
``progress``, ``validate``, ``errors``.
"""
