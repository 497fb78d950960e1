"""Model: the scaled feature matrix, the user identifier (MLflow) and its evaluation."""
