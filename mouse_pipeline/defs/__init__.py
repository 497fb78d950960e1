"""The Dagster shell, one sub-package per pipeline stage: an asset's name leads to its room.

=================  ==========================================================
``ingestion/``     ``raw_*_events``, ``rejected_*`` assets and the event checks
``features/``      ``enrolled_training_events``, ``train_session_features``, ``test_session_features``
``model/``         ``user_identifier``, ``model_evaluation``, ``feature_matrix``, ``model_card``, ``champion``
``verification/``  ``verification_calibration``, ``verification``
``prediction/``    ``predictions``; the ``score_new_sessions`` job, ``inbox_sensor``
``exploration/``   ``event_profile``, ``user_plots``
``batches/``       training batches of the landing folder (dynamic partitions)
``retrain.py``     the ``retrain`` job and its schedule
``resources.py``   resources built from :class:`mouse_pipeline.settings.Settings`
=================  ==========================================================

Every asset body is a few lines: read inputs, call the functional core
(``mouse_pipeline.*`` outside this package, which never imports Dagster),
return the value with metadata. :mod:`mouse_pipeline.definitions` merges the
stages into one ``Definitions`` object.
"""
