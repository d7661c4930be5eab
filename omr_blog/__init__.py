"""Practical OMR with vision backbones: the runnable, literate companion of the blog post

Modules:

- `omr_blog.attention_maps`: An encoder looks at the image; a decoder writes ABC one token at a time, and at every step it *asks the encoder where to look* through cross-attention. We walk one real strip through MusicTrOCR with the shape at every step.
- `omr_blog.backbones`: One registry, the exact architectures of the checkpoints the post names, a tiny variant of each family for the CPU presets, and one adapter that turns any of them into `(features (B, N, C), key-padding mask (B, N))`.
- `omr_blog.batching`: Normalise height, keep the aspect ratio, pad each batch to a common width with a pixel mask, and group similar widths so that padding stays small.
- `omr_blog.checkpoints`: `build_model` turns a `TrainConfig` and a tokenizer into the model (backbone weights from `init_from`, the fine-tuning mode applied); `save_checkpoint` / `load_checkpoint` write and read a folder that resumes a run exactly and decodes on its own, with one-line errors for anything that is not such a folder.
- `omr_blog.config`: `TrainConfig` is everything a training run depends on; a preset (`configs/presets/<name>.yaml`) fills it, a backbone and overrides complete it, and `make_config` is the one way to build it, so a typo fails at once.
- `omr_blog.ctc`: The alternative Section 2 argues against, built for real: the same backbone and projection, a frame encoder of the decoder's size, and CTC over the image read column by column. `omr-blog ctc` trains it with the cpu-tiny budget so Section 2 can show where it fails.
- `omr_blog.ctc_runs`: `omr-blog ctc` trains Section 2's CTC recogniser (02d_ctc) with a preset's recipe and budget, and the chord probe trains it beside the attention decoder on chords, so Section 2 can show where CTC fails.
- `omr_blog.dataset`: `omr-blog data` builds a Hugging Face `DatasetDict` with PDMX-Synth's columns from the music21 corpus; the same loaders read the real PDMX-Synth when the hub is reachable.
- `omr_blog.decoding`: The decoder writes one token at a time. Without a cache, step *t* recomputes all *t* previous tokens through every layer; with one, it computes only the new token and reuses everything else.
- `omr_blog.evaluation`: Decode a split (greedy or beam search), score it with every metric of `metrics`, and keep each prediction beside its reference so Section 4 can look at failures, not only at averages.
- `omr_blog.explore`: Optical Music Recognition turns a picture of a score into a symbolic score. This section shows, with the data we train on, why that is harder than reading text.
- `omr_blog.exposure_runs`: `omr-blog exposure` trains teacher forcing, scheduled sampling and scheduled sampling + GRPO on the cpu-tiny preset with the same wall-clock budget, plus GRPO on the shipped default checkpoint, and commits their records under `results/exposure-cpu/`. Finished runs are skipped on a re-run.
- `omr_blog.finetune`: `TrainConfig.finetune` decides which of the backbone's weights train (all, none, low-rank adapters, adapters on 4-bit weights); `TrainConfig.distill_from` lets a small model learn from a trained one. The checkpoints and the training loop of this section call these; Section 5 measures what they buy.
- `omr_blog.grpo`: Group Relative Policy Optimisation with the KV-cached decoder: sample several transcriptions per image, score them with a music-aware reward, and push up the ones that beat their group's average.
- `omr_blog.memory`: `estimate_memory(config)` predicts the peak memory of a training step for any backbone, batch, image size, sequence length, precision and fine-tuning mode without allocating it; `measure_training_memory` measures the real peak in a fresh process; `fit_advice` turns the estimator into advice for a memory budget (`omr-blog fit`).
- `omr_blog.metrics`: How wrong is a transcription? Symbol error rate as LEGATO computes it, a music-aware SER over ABC symbols, CER, LER, exact match, ABC validity and musicdiff's OMR-NED.
- `omr_blog.model`: The post's model: any of the seven backbones -> Linear to `d_model` -> 2D positional encoding (CNN grids) -> a pre-norm Transformer decoder with masked self-attention, cross-attention and SwiGLU -> vocabulary logits.
- `omr_blog.publish`: `omr-blog render` turns the executed section notebooks into `_site/`: a landing page and the sections in order, code folded, interactive plotly figures that work offline, and links between sections.
- `omr_blog.quantization`: Dynamic INT8 quantisation of a trained model, its size on disk, and how fast it decodes: what Section 5 compares before and after.
- `omr_blog.render`: Verovio engraves each piece (one system per image, or whole pages); resvg rasterises; abcm2ps renders a domain-shift split.
- `omr_blog.results`: The sweep's committed results as tables and figures, the domain shift to another engraver, and a failure analysis that looks at the worst transcriptions instead of averaging them away. Every number in the prose is computed here from `results/`; a result that does not exist is shown as missing.
- `omr_blog.scheduled_sampling`: Teacher forcing trains the decoder on gold prefixes, but at inference it reads its own. Scheduled sampling feeds it some of its own predictions during training, and Gumbel-Softmax keeps that step differentiable.
- `omr_blog.studies`: `omr-blog efficiency` runs Section 5's experiments at CPU scale and writes their records under `results/efficiency-cpu/` (fine-tuning modes, distillation, image height, INT8). Finished runs are skipped on a re-run. (The same command's `--study memory` is Section 6's validation of the memory estimator: 06a_memory.)
- `omr_blog.sweep`: `omr-blog sweep --preset cpu-tiny` executes `nbs/experiments/train_backbone.ipynb` once per backbone into `runs/<preset>/<backbone>/`, skips finished runs, records a failing backbone and goes on, and writes a summary.
- `omr_blog.train`: AdamW, linear warmup over 3% of the steps then decay, gradient clipping, accumulation to an effective batch of 32, mixed precision, fixed seeds and data order; checkpoints that resume exactly; a JSON record per run.
- `omr_blog.transcribe`: `omr-blog transcribe IMAGE... --checkpoint DIR` for real users: any image file, one line of error per bad input, nothing half-written."""

__version__ = "0.0.1"
