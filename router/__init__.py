"""Router: the cheap-or-flagship decision. Training data, features, training and evaluation, the
saved artifact, calibration of thresholds, and the cascade's confidence in an answer."""
