"""Item features: Sentence-BERT text vectors and CLIP image keywords.

Re-exports are lazy so that `import core.features.store` stays cheap (no torch).
"""
_EXPORTS = {
    "build_features": "build", "encode_items": "build", "add_items": "build",
    "FeatureReport": "build", "TextEncoder": "text", "KeywordExtractor": "keywords",
    "ClipUnavailable": "keywords", "DEFAULT_TAG": "keywords", "load_image": "images",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib
        return getattr(importlib.import_module(f"core.features.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'core.features' has no attribute {name!r}")
