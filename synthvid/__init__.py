"""synthvid: a procedurally generated video world with density-aware captions and MVBench-style questions.

Public API:

- spec: `validate_spec(spec) -> Scene` (raises `ValueError` naming the field), `Scene`, `SceneObject`, `Event`,
  vocabulary constants `SHAPES`, `COLORS`, `BACKGROUNDS`, `DIRECTIONS`, `EVENT_TYPES`;
- render: `render_frames(scene) -> uint8 [T, H, W, 3]`, `render_attribute_maps(scene)` (per-pixel colour / shape labels), `write_mp4(scene, path)`, `read_mp4(path)`;
- truth: `compute_truth(scene) -> GroundTruth`, `object_states`, `clip_event_counts`, `FRAMES_PER_CLIP`;
- captions: `clip_captions(truth)`, `clip_caption(truth, clip)`, `video_caption(captions)`, `caption_event_count`;
- questions: `generate_questions(truth, rng)`, `format_question(q)`, `format_answer(q)`, `permute_options(q, rng)`, `open_question(q)`, `TASKS`;
- sampler: `sample_scene(rng, density=None, allowed_pairs=None, required_pair=None) -> spec dict`;
- dataset: `build_dataset(out_dir, counts, seed, workers)`, `make_record`, `HELD_OUT_PAIRS`
  (command line: `python -m synthvid.build`).
"""

from .captions import caption_event_count, clip_caption, clip_captions, video_caption
from .dataset import (HELD_OUT_PAIRS, SEEN_PAIRS, answer_names_held_out_pair, build_dataset, has_held_out_pair,
                      make_record, make_spec, text_only_records)
from .questions import TASKS, format_answer, format_question, generate_questions, open_question, permute_options
from .render import read_mp4, render_attribute_maps, render_frames, write_mp4
from .sampler import DENSITIES, all_pairs, sample_scene, scene_pairs
from .spec import (
    BACKGROUNDS,
    COLORS,
    DIRECTIONS,
    EVENT_TYPES,
    SHAPES,
    Event,
    Scene,
    SceneObject,
    validate_spec,
)
from .truth import FRAMES_PER_CLIP, GroundTruth, ObjectState, TruthEvent, clip_event_counts, compute_truth, object_states


__all__ = [
    "BACKGROUNDS", "COLORS", "DENSITIES", "DIRECTIONS", "EVENT_TYPES", "FRAMES_PER_CLIP", "HELD_OUT_PAIRS",
    "SEEN_PAIRS", "SHAPES", "TASKS", "Event", "GroundTruth", "ObjectState", "Scene", "SceneObject", "TruthEvent",
    "all_pairs", "build_dataset", "caption_event_count", "clip_caption", "clip_captions", "clip_event_counts",
    "compute_truth", "format_answer", "format_question", "generate_questions", "has_held_out_pair", "make_record",
    "make_spec", "object_states", "open_question", "permute_options", "read_mp4", "render_attribute_maps", "render_frames", "sample_scene", "scene_pairs",
    "text_only_records", "validate_spec", "video_caption", "write_mp4",
]
