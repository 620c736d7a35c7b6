"""The streaming active-learning service: stream in, uncertainty queue out, retraining as labels come."""
