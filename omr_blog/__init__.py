"""Practical OMR with vision backbones: the runnable, literate companion of the blog post

Modules:

- `omr_blog.batching`: Normalise height, keep the aspect ratio, pad each batch to a common width with a pixel mask, and group similar widths so that padding stays small.
- `omr_blog.dataset`: `omr-blog data` builds a Hugging Face `DatasetDict` with PDMX-Synth's columns from the music21 corpus; the same loaders read the real PDMX-Synth when the hub is reachable.
- `omr_blog.render`: Verovio engraves each piece (one system per image, or whole pages); resvg rasterises; abcm2ps renders a domain-shift split."""

__version__ = "0.0.1"
