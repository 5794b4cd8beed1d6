"""GLVD networks and their configs."""
