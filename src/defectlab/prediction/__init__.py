"""Prediction with a trained model."""

from defectlab.prediction.predictor import Prediction, Predictor

__all__ = ["Prediction", "Predictor"]
