"""Expressions on a reconstructed face: ARKit blendshapes and the neutral option.

- :func:`arkit_offsets` — the 52 ARKit blendshapes (Apple's exact names) as per-vertex offsets
  for a reconstruction, transferred from the ICT expression modes the template carries.
- :func:`fit_expression` / :func:`neutralize` — estimate the expression of a reconstruction in
  the ICT shape space (identity and expression fitted jointly, so identity is not mistaken for
  expression) and remove it.
"""
from .arkit import ARKIT_NAMES, ICT_TO_ARKIT, arkit_offsets, similarity_to
from .neutral import ExpressionFit, fit_expression, neutralize

__all__ = ["ARKIT_NAMES", "ICT_TO_ARKIT", "arkit_offsets", "similarity_to", "ExpressionFit", "fit_expression",
           "neutralize"]
