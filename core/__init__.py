"""MSM4SR Studio core library: workspace, importers, features, model, training.

Nothing here imports Qt; the app and the `msm4sr` command line both call it.
"""
__version__ = "0.1.0"
