"""Robustness suites: clean, corruptions (-C), perturbations (-P), natural adversarial (-A), FGSM."""
