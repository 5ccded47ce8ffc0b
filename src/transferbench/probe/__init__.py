"""The linear mode: frozen features, an L2-regularized logistic-regression probe over the regularization path
(solver), chosen on validation and refit on train+val (run). Rules: workflow/rules/probe.smk."""
