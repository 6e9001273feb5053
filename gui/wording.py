"""Messages from core speak command line ("Pass --clip-weights …"); the app says the same
in the words of its own controls before it shows them."""
from __future__ import annotations

import re

# (pattern, replacement): the command-line phrases core's messages use, most specific first
PHRASES = [
    (r"Pass --clip-weights FILE\.safetensors, or continue without image keywords\.",
     "Choose a local CLIP weights file (.safetensors), or go on without image keywords."),
    (r"\(--keywords-from none\)", "(“No image keywords” was chosen)"),
    (r"use --resume to continue it or --run to name a new one",
     "tick “Resume last run” to continue it, or give a new run name"),
    (r"run `msm4sr features` first, or use --model sasrec",
     "import the catalog with “Build features” ticked first, or train “SASRec (IDs only)”"),
    (r"use `msm4sr train --model sasrec`", "choose the stage “Pre-train + fine-tune”"),
    (r"--device (cuda|mps): ", r"device \1: "),
    (r"--from needs", "“Fine-tune from” needs"),
    (r"Build them later with `msm4sr features`\.",
     "Build them later from a terminal: msm4sr features WORKSPACE."),
]


def for_the_app(text: str) -> str:
    for pattern, repl in PHRASES:
        text = re.sub(pattern, repl, text)
    return text
