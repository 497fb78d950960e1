"""Training batches: files of the landing folder, validated and featurised once each."""
