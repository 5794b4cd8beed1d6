"""Training GLVD."""
