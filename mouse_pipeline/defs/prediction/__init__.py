"""Prediction: the champion names the user of every test session, and of files dropped in the inbox."""
