"""The router: candidates, solvers and explanations (docs/router.md)."""
