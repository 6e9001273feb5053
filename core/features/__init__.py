"""Item features: Sentence-BERT text vectors and CLIP image keywords."""
