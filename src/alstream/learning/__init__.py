"""What the experiment and the service share: strategies, models, scoring a pool, evaluation, stopping."""
