"""Exports of a trained model: a SavedModel taking strings, and a CTranslate2 model."""
