"""Mutation testing of the code that produces published numbers, verdicts and statistics, or guards data (not part
of CI; CPU-heavy: run one target at a time). For each target module it plants one small bug at a time (an AST
operator swap, a boundary, a constant + 1, a dropped negation), runs only the tests that execute the mutated line,
and reports killed / total with the survivors listed.

    python tests/mutation.py --list                   # the targets, their mutant counts and test files
    python tests/mutation.py metrics                  # one target; several may be named
    python tests/mutation.py nsbench/report/family.py # a module: every target in it
    python tests/mutation.py stats --baseline-tests   # only the tests that existed before the value tests
    python tests/mutation.py selection --json out.json # results for later comparison (--merge, --markdown)
    python tests/mutation.py bench.tasks.clean --only "_scaled|" --tests tests/bench/test_clean.py -v
                                                      # does a new test kill these mutants?

How: the parent process imports the test modules once (pytest --collect-only), then records which test executes
which lines of the target (a line tracer, in a forked child). For every mutant it forks a child that re-executes the
target module's code, mutated, in the module's own namespace, rebinds every name other modules imported from it
(`from x import f`) to the mutated objects, copies a re-executed class's methods onto the class it replaces (objects
made at import keep their class), and runs the covering tests with -x (the parent freezes its objects for the
garbage collector before forking, so a child copies none of them). A child that fails is a kill; a test that runs
past 5x its clean time + 30 s (pytest-timeout), or a child past 5x the tests' clean time + 10 s, is counted as a kill
(an infinite loop): "killed (timeout)". A mutant no test executes survives as "not covered". Mutants listed in
EQUIVALENT are reported by name and left out of the score.

Our own runner, not mutmut: see "Why our own mutation runner" in tests/README.md for what mutmut 3.8.1 did on this
project when it was run. Linux only (os.fork).
"""
from __future__ import annotations

import argparse
import ast
import gc
import json
import os
import re
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # forked children must not inherit a started OpenMP pool
ROOT = Path(__file__).resolve().parent.parent


def _ids(path: str, *names: str) -> list[str]:
    return [f"{path}::{n}" for n in names]


# Tests by the file that held them before tests/ followed the package (issue 29), under their new ids
_METRICS = [  # tests/test_metrics.py
    *_ids("tests/bench/test_metrics.py", "test_alexnet_own_errors_give_ce_one_and_mce_100",
        "test_ce_is_ratio_of_sums_not_mean_of_ratios", "test_resnet50_row_gives_mce_76_9",
        "test_benchmark_corruptions_match_reference_table", "test_top5_distance_examples_from_appendix_c",
        "test_flip_probability_noise_and_temporal", "test_flip_probability_difficulty_two_uses_both_offset_chains",
        "test_mean_per_sequence_then_over_sequences", "test_ordinal_ranks_break_ties_by_index",
        "test_corruption_rows_are_the_metric_functions", "test_perturbation_rows_are_the_metric_functions",
        "test_built_perturbation_sequences_are_scored_by_the_metric_functions"),
]
_PSEUDO = [  # tests/test_pseudo.py
    *_ids("tests/training/test_pseudo_labels.py", "test_oracle_soft_labels_are_softmax_of_logits_over_temperature",
        "test_oracle_hard_labels_are_argmax_one_hot", "test_topk_keeps_largest_and_renormalises",
        "test_filter_and_balance_give_exact_per_class_counts", "test_balance_target_mean_and_uneven_duplication",
        "test_no_balance_keeps_filtered_set_and_reports_agreement", "test_noise_does_not_leak_into_pseudo_labeling",
        "test_store_round_trip", "test_streaming_balance_from_shard_statistics_equals_in_memory_select",
        "test_filter_reads_the_probabilities_the_released_code_uses"),
]
_VALUES_METRICS = [  # tests/test_values_metrics.py, the value tests
    *_ids("tests/bench/test_metrics.py", "test_ce_by_hand", "test_relative_ce_with_different_clean_errors",
        "test_mce_and_relative_mce_by_hand_over_the_corruptions_present",
        "test_relative_mce_against_alexnet_with_a_model_of_its_own_clean_error",
        "test_corruption_task_rows_are_the_hand_ratios", "test_top5_distance_clips_ranks_beyond_five",
        "test_flip_probability_equals_the_reference_code", "test_flip_probability_by_hand_with_three_chains",
        "test_sequence_t5d_equals_the_reference_code", "test_sequence_t5d_anchors_on_the_first_frame_for_noise",
        "test_ordinal_ranks_by_hand", "test_fr_mfr_t5d_mt5d_rows_against_the_alexnet_table",
        "test_task_order_puts_perturbations_after_corruptions"),
]
_VALUES_STATS = [  # tests/test_values_stats.py
    *_ids("tests/report/test_stats.py", "test_weights_are_resample_counts_over_n",
        "test_accuracy_interval_on_a_fixed_seed_equals_plain_resampling",
        "test_paired_difference_is_the_resampled_difference_and_narrower_than_unpaired",
        "test_mcnemar_exact_two_sided_p_on_a_known_table", "test_paired_accuracy_difference_reports_the_mcnemar_p",
        "test_bootstrap_p_of_a_measure_without_binary_outcomes", "test_seeds_interval_is_the_t_interval",
        "test_seeds_difference_paired_t_by_closed_form", "test_seeds_difference_welch_by_hand",
        "test_corruption_sampler_values_by_hand", "test_perturbation_sampler_values_by_hand",
        "test_reproduces_quantiles_and_fixed", "test_reproduces_at_its_tolerance_boundary",
        "test_identical_unpaired_measures_have_p_one_and_a_zero_interval",
        "test_pairing_needs_identical_non_empty_items", "test_relative_mce_sampler_default_clean_error_is_zero",
        "test_t_interval_edge_cases", "test_welch_with_zero_variances_and_partly_shared_seeds",
        "test_draws_give_exactly_b_resamples", "test_welch_with_small_variances",
        "test_items_on_other_or_unrecorded_data_are_compared_unpaired_and_say_why",
        "test_holm_caps_adjusted_p_at_one_and_keeps_the_raw_order"),
]
_VALUES_ATTACKS = [  # tests/test_values_attacks.py
    *_ids("tests/bench/test_attacks.py", "test_fgsm_is_one_signed_gradient_step_of_eps_clamped_to_unit_range",
        "test_pgd_steps_by_hand_with_projection_onto_the_eps_ball",
        "test_pgd_with_zero_steps_is_the_clamped_random_start", "test_bad_attack_inputs_are_refused",
        "test_pixels_without_gradient_do_not_move",
        "test_pgd_defaults_are_ten_steps_of_one_grey_level_from_seed_zero"),
]
_VALUES_TRAINING = [  # tests/test_values_training.py
    *_ids("tests/training/test_pseudo_labels.py",
        "test_the_filter_keeps_a_confidence_exactly_at_the_threshold_as_the_released_code_does",
        "test_untempered_confidence_by_hand", "test_topk_targets_by_hand", "test_balance_targets_by_hand",
        "test_balanced_selection_reaches_the_students_batches_image_by_image", "test_store_statistics_by_hand",
        "test_select_statistics_and_targets_at_their_edges", "test_topk_keeps_every_class_up_to_100",
        "test_an_empty_shard_selects_nothing",
        "test_streaming_balance_keeps_the_most_confident_inside_one_histogram_bin",
        "test_per_class_one_and_per_class_agreement", "test_streaming_balance_at_adjacent_bins_and_the_top_bin",
        "test_selected_rows_point_at_their_own_targets_across_row_groups",
        "test_empty_and_all_filtered_sets_report_zero"),
    *_ids("tests/training/test_stage.py", "test_soft_cross_entropy_by_hand", "test_unlabeled_weight",
        "test_the_training_loss_is_the_weighted_sum_by_value", "test_the_loss_of_a_one_image_epoch"),
]


BASE_TESTS = {  # the suite before the value tests (issue 25), for the "before" score
    "metrics": [*_METRICS, "tests/bench/test_official_exact.py"],
    "tasks_p": ["tests/bench/test_official_exact.py", "tests/bench/test_perturbation_sets.py"],
    "stats": ["tests/report/test_render.py::test_render_from_fixture_results_without_running_a_model",
              "tests/report/test_inputs.py::test_table_normaliser_resamples_the_model_side_only",
              "tests/report/test_inputs.py::test_seed_groups_are_pooled_across_seeds",
              "tests/study/test_study.py::test_one_seed_claims_use_the_per_image_paired_test"],
    "attacks": ["tests/bench/test_harness.py::test_fgsm_eps_zero_equals_clean_and_inputs_outside_unit_range_are_refused",
                "tests/bench/test_attacks.py::test_attacks_need_no_torchattacks",
                "tests/bench/test_attacks.py::test_attacks_equal_torchattacks"],
    "label": _PSEUDO,
    "store": _PSEUDO,
    "selection": _PSEUDO,
    "losses": ["tests/training/test_stage.py::test_training_stops_at_the_first_non_finite_loss_and_keeps_the_last_good_state",
               "tests/training/test_stage.py::test_student_trains_in_train_mode_with_input_and_model_noise"],
}
NEW_TESTS = {
    "metrics": [*_VALUES_METRICS, "tests/bench/test_reference_fidelity.py"],  # + float-zero denominators
    "tasks_p": _VALUES_METRICS,
    "stats": [*_VALUES_STATS, "tests/report/test_multiplicity.py"],  # + Holm and zero variance
    "attacks": _VALUES_ATTACKS,
    "label": _VALUES_TRAINING,
    "store": _VALUES_TRAINING,
    "selection": _VALUES_TRAINING,
    "losses": [*_VALUES_TRAINING,
               "tests/test_distributed.py::test_one_ddp_step_matches_one_process_on_the_combined_batch"],
}


@dataclass
class Target:
    module: str
    functions: tuple[str, ...] = ()  # qualified names (prefix match); empty: the whole module
    lines: str | None = None  # a regex a line must match to be mutated (narrows long functions)
    tests: tuple[str, ...] = ()  # targets of issue 31: the test files (or ids) whose coverage picks each mutant's tests
    minus: tuple[str, ...] = ()  # other targets of the same module whose mutants this one leaves to them
    keys: bool = False  # also rename the strings that name data (dict keys, subscripts, .get, comparisons): outputs


TARGETS = {
    "metrics": Target("nsbench.bench.metrics"),
    "tasks_p": Target("nsbench.bench.tasks.perturbations", ("run",)),  # FR, T5D, mFR, mT5D rows
    "stats": Target("nsbench.report.stats"),
    "attacks": Target("nsbench.bench.attacks"),
    # pseudo-labels: what the filter reads, the store (filter, histogram, shards), the selection (balancing)
    "label": Target("nsbench.training.label", ("untempered_confidence", "topk_targets", "filter_confidence")),
    "store": Target("nsbench.training.store", ("passes_filter", "conf_bins", "ShardWriter.add", "ShardWriter._flush",
                                               "load_selection")),
    "selection": Target("nsbench.training.selection", ("select", "_target", "plan_and_select", "_plan",
                                                       "_boundary_rows", "_write_selections", "_store_stats")),
    "losses": Target("nsbench.training.stage", ("soft_cross_entropy", "batch_loss", "run_epoch", "make_batches",
                                                "unlabeled_weight", "setup"),
                     r"loss|smoothing|n_lab|unlabeled_weight|pseudo_batch = |steps = "),
}


def _t(module: str, *tests: str, functions: tuple[str, ...] = (), minus: tuple[str, ...] = (),
       keys: bool = False) -> Target:
    """A target of issue 31, named by its module (relative to nsbench), tested by the given files plus the file
    named after its subject wherever it lies (tests/**/test_<module>.py), so new value tests are picked up."""
    return Target(module, functions, None, tests, minus, keys)


# The modules that compute a published number, a verdict or a statistic, or that guard data (issue 31). Test files
# by subject and by who calls the module; the coverage run picks, per mutant, the tests that execute its line.
_B = "tests/bench/"
_REPORT = ("tests/report/test_render.py", "tests/report/test_inputs.py", "tests/report/test_stats.py",
           "tests/report/test_multiplicity.py", "tests/report/test_power.py", "tests/report/test_scorecard.py")
_OFFICIAL = (_B + "test_official_sets.py", _B + "test_official_sets_values.py", "tests/test_schema.py")
_PSEUDO_ALL = ("tests/training/test_pseudo_labels.py",)
for _name, _target in {
    # numbers and verdicts of the page, the study's claims, the CLI's and --json's headline
    "calibration": _t("nsbench.calibration", _B + "test_calibration.py", _B + "test_metrics.py",
                      "tests/report/test_scorecard.py"),
    "report.family": _t("nsbench.report.family", "tests/report/test_power.py", "tests/report/test_multiplicity.py",
                        "tests/report/test_stats.py", "tests/report/test_render.py"),
    "report.claims": _t("nsbench.report.claims", "tests/report/test_multiplicity.py", "tests/report/test_power.py",
                        "tests/study/test_study.py"),
    "report.compare": _t("nsbench.report.compare", *_REPORT),
    "report.headline": _t("nsbench.report.headline", *_REPORT),
    "report.tables": _t("nsbench.report.tables", "tests/report/test_render.py", "tests/report/test_stats.py"),
    "report.conditions": _t("nsbench.report.conditions", "tests/report/test_render.py"),
    "report.calibration_table": _t("nsbench.report.calibration_table", "tests/report/test_scorecard.py",
                                   "tests/report/test_render.py"),
    "report.shifts": _t("nsbench.report.shifts", "tests/report/test_scorecard.py", "tests/report/test_render.py"),
    "report.published": _t("nsbench.report.published", "tests/report/test_scorecard.py",
                           "tests/report/test_render.py"),
    "report.effective": _t("nsbench.report.effective", "tests/report/test_scorecard.py",
                           "tests/report/test_render.py"),
    "report.fmt": _t("nsbench.report.fmt", *_REPORT),  # the precision every printed number gets
    "report.load": _t("nsbench.report.load", "tests/report/test_inputs.py", "tests/report/test_render.py"),  # guards
    "report.scorecard": _t("nsbench.report.scorecard", "tests/report/test_render.py"),  # the scorecard CSVs
    "schema": _t("nsbench.schema", "tests/test_schema.py", "tests/report/test_render.py", "tests/cli/test_eval.py",
                 functions=("headline_numbers", "measures_in", "lookup", "row_mask", "Measure", "measure",
                            "attack_measure", "v2_measure", "unit_metric", "usual_effect"), keys=True),
    "commands.eval": _t("nsbench.commands.eval", "tests/test_schema.py", "tests/cli/test_eval.py",
                        "tests/cli/test_own_models.py", functions=("_headline", "_measures"), keys=True),
    "checkpoint": _t("nsbench.checkpoint", "tests/training/test_resume.py", "tests/cli/test_export.py"),
    "study.convergence": _t("nsbench.study.convergence", "tests/study/test_study.py"),
    "study.spec": _t("nsbench.study.spec", "tests/study/test_study.py"),
    "study.runner": _t("nsbench.study.runner", "tests/study/test_study.py"),
    "study.jobs": _t("nsbench.study.jobs", "tests/study/test_study.py"),
    # bench: the harness, its sets, and every task
    "bench.built_a": _t("nsbench.bench.built_a", _B + "test_harness.py"),
    "bench.calibration_rows": _t("nsbench.bench.calibration_rows", _B + "test_metrics.py", _B + "test_calibration.py",
                                 _B + "test_official_sets.py"),
    "bench.harness": _t("nsbench.bench.harness", _B + "test_harness_values.py", _B + "test_precision.py",
                        _B + "test_attacks_by_name.py", "tests/cli/test_eval.py"),
    "bench.context": _t("nsbench.bench.context", _B + "test_harness.py", _B + "test_metrics.py",
                        _B + "test_official_exact.py", _B + "test_perturbation_sets.py",
                        _B + "test_reference_fidelity.py", "tests/cli/test_eval.py"),
    "bench.normaliser": _t("nsbench.bench.normaliser", _B + "test_official_exact.py", _B + "test_metrics.py",
                           _B + "test_perturbation_sets.py", _B + "test_official_sets.py", _B + "test_harness.py"),
    "bench.corruption_sets": _t("nsbench.bench.corruption_sets", _B + "test_official_exact.py",
                                _B + "test_reference_fidelity.py", _B + "test_harness.py", _B + "test_native_resolution.py"),
    "bench.perturbation_sets": _t("nsbench.bench.perturbation_sets", _B + "test_metrics.py",
                                  _B + "test_official_exact.py", _B + "test_harness.py", _B + "test_native_resolution.py"),
    "bench.official_sets": _t("nsbench.bench.official_sets", *_OFFICIAL),
    "bench.calibrated": _t("nsbench.bench.calibrated", _B + "test_official_exact.py", _B + "test_reference_fidelity.py",
                           _B + "test_perturbation_sets.py"),
    "bench.cache": _t("nsbench.bench.cache", _B + "test_metrics.py", _B + "test_perturbation_sets.py",
                      _B + "test_harness.py"),
    "bench.eval_model": _t("nsbench.bench.eval_model", "tests/cli/test_own_models.py", _B + "test_harness.py",
                           _B + "test_attacks_by_name.py", "tests/cli/test_eval.py"),
    "bench.hub": _t("nsbench.bench.hub", "tests/cli/test_own_models.py"),
    "bench.inputs": _t("nsbench.bench.inputs", _B + "test_harness.py", "tests/cli/test_eval.py",
                       "tests/cli/test_own_models.py"),
    "bench.suite": _t("nsbench.bench.suite", "tests/test_config.py", _B + "test_harness.py",
                      _B + "test_official_sets.py"),
    "bench.registry": _t("nsbench.bench.registry", _B + "test_harness.py", "tests/test_schema.py",
                         _B + "test_official_sets.py"),
    "bench.tasks.clean": _t("nsbench.bench.tasks.clean", _B + "test_calibration.py", _B + "test_harness.py",
                            _B + "test_metrics.py",
                            _B + "test_attacks_by_name.py", "tests/test_schema.py"),
    "bench.tasks.corruptions": _t("nsbench.bench.tasks.corruptions", _B + "test_metrics.py",
                                  _B + "test_official_exact.py", _B + "test_reference_fidelity.py",
                                  _B + "test_harness.py", _B + "test_native_resolution.py"),
    "bench.tasks.perturbations": _t("nsbench.bench.tasks.perturbations", _B + "test_metrics.py",
                                    _B + "test_official_exact.py", _B + "test_perturbation_sets.py",
                                    _B + "test_harness.py", minus=("tasks_p",)),
    "bench.tasks.natural": _t("nsbench.bench.tasks.natural", _B + "test_reference_fidelity.py",
                              _B + "test_harness.py", _B + "test_built_a.py"),
    "bench.tasks.attack": _t("nsbench.bench.tasks.attack", _B + "test_harness.py", _B + "test_attacks.py",
                             "tests/test_schema.py"),
    "bench.tasks.attacks_by_name": _t("nsbench.bench.tasks.attacks_by_name", _B + "test_attacks_by_name.py"),
    "bench.tasks.imagenet_v2": _t("nsbench.bench.tasks.imagenet_v2", *_OFFICIAL),
    "bench.tasks.imagenet_sketch": _t("nsbench.bench.tasks.imagenet_sketch", *_OFFICIAL),
    "bench.tasks.imagenet_c_bar": _t("nsbench.bench.tasks.imagenet_c_bar", *_OFFICIAL),
    "bench.tasks.imagenet_3dcc": _t("nsbench.bench.tasks.imagenet_3dcc", *_OFFICIAL),
    # the -C / -P generators in torch (issue 34), each against its reference
    "bench.onthefly.params": _t("nsbench.bench.onthefly.params", _B + "test_onthefly_deterministic.py",
                                _B + "test_onthefly_noise_blur.py", _B + "test_onthefly_weather.py", _B + "test_native_resolution.py"),
    "bench.onthefly.rng": _t("nsbench.bench.onthefly.rng", _B + "test_onthefly_rng.py"),
    "bench.onthefly.deterministic": _t("nsbench.bench.onthefly.deterministic", _B + "test_onthefly_deterministic.py",
                                       _B + "test_native_resolution.py"),
    "bench.onthefly.noise_blur": _t("nsbench.bench.onthefly.noise_blur", _B + "test_onthefly_noise_blur.py",
                                    _B + "test_onthefly_perturb.py", _B + "test_native_resolution.py"),
    "bench.onthefly.weather": _t("nsbench.bench.onthefly.weather", _B + "test_onthefly_weather.py", _B + "test_native_resolution.py"),
    "bench.onthefly.perturb": _t("nsbench.bench.onthefly.perturb", _B + "test_onthefly_perturb.py",
                                 _B + "test_onthefly_tasks.py"),
    # training: every module (label, store, selection and stage: what their targets above leave)
    "training.optim": _t("nsbench.training.optim", "tests/training/test_stage.py"),
    "training.reference_models": _t("nsbench.training.reference_models", _B + "test_built_a.py"),
    "training.budget": _t("nsbench.training.budget", "tests/training/test_ladder.py"),
    "training.batches": _t("nsbench.training.batches", "tests/data/test_augment.py", "tests/training/test_stage.py"),
    "training.driver": _t("nsbench.training.driver", "tests/training/test_budget.py", "tests/training/test_resume.py",
                          "tests/cli/test_train.py"),
    "training.ladder": _t("nsbench.training.ladder", "tests/training/test_budget.py", "tests/test_models.py"),
    "training.records": _t("nsbench.training.records", "tests/training/test_resume.py", "tests/cli/test_train.py",
                           "tests/study/test_study.py"),
    "training.run_data": _t("nsbench.training.run_data", "tests/data/test_augment.py", "tests/training/test_resume.py",
                            "tests/study/test_study.py"),
    "training.validate": _t("nsbench.training.validate", "tests/training/test_stage.py"),
    "training.stage": _t("nsbench.training.stage", "tests/training/test_resume.py", minus=("losses",)),
    "training.label": _t("nsbench.training.label", *_PSEUDO_ALL, minus=("label",)),
    "training.store": _t("nsbench.training.store", *_PSEUDO_ALL, minus=("store",)),
    "training.selection": _t("nsbench.training.selection", *_PSEUDO_ALL, minus=("selection",)),
}.items():
    TARGETS[_name] = _target

# Mutants that cannot change behaviour, by id (function | source line | mutation): the reason is printed.
_EMPTY = ("unreachable: ShardWriter writes every shard with at least one row group (an empty shard: one group of 0 "
          "rows, tested), so the per-group lists are never empty")
_2D = "every caller passes 2-D arrays ([rows, classes]), where axis -1 and axis 1 are the same axis"
_SIGN = ("reached only when low > 0 or high < 0; low == 0 there would need high < 0 <= low, and an interval has "
         "low <= high: low >= 0 and low > 0 agree wherever the line runs")
_POPPED = "epochs, batch size and lr are popped from this recipe straight after: the caller's values replace them"
_UNMUTATED_RECORD = "nothing assigns to or hashes these records, so frozen or not they behave alike"
_PROGRESS_BAR = "how the progress bar is shown, not what is scored"
_RA_OFF = ("RandAugment runs only when randaugment is on and layers > 0 (augment.batch_augment): one of the four "
           "arguments mutated alone leaves it off, and magnitude / magnitude_std are read only when it runs")
_BOX_WINDOW = ("Pillow's BOX window [xmin, xmax) holds only taps inside the box, so the box test never fails "
               "within it (the test compares with Pillow bit for bit on every pair of sizes 1-36)")
_FFT_BOUND = ("a power of two lies in [n, 2n], so the search for a 5-smooth size ends before its bound (checked for "
              "n up to 5,000)")
_GLASS_CHECKED = ("Checked in a private copy: glass_shuffle equal to the reference loop written out on 1,470 random "
                  "cases (delta 1-5, H and W from 2 delta to 2 delta + 6, i.e. no/one/several looped rows and columns, "
                  "2 iterations) with the mutant in place.")


def _looped_wider(what: str) -> str:
    """The reason shared by glass_shuffle's `looped` mutants that widen the mask (`what`: how)."""
    return (f"`looped` only narrows `before` to sources inside the looped region (= the set dst of pixels the "
            f"iteration writes); this mutant widens it ({what}), and the pixels added are never in dst, so src[q] = q "
            f"and done[q] = True for them: a pixel p marked not-done with src[p] = q then resolves in one doubling "
            f"step to src[q] = q, done, exactly as if it had been done; the pointer doubling returns the same src, so "
            f"the same image. ")


EQUIVALENT: dict[str, str] = {
    "resolved|q = min(p / 2, 0.5)|0.5 -> 1.5|1":
        "the cap is never reached for a p value: every p resolved/refine get (bootstrap_p, capped by min(1.0, ...); binomtest and t-test p values) lies in [0, 1], so p / 2 <= 0.5 and min(p / 2, 0.5) == min(p / 2, 1.5) == p / 2 exactly (a p of 0.6 gives q = 0.3 either way); the two differ only for a \"p\" above 1",
    "make_batches|n_pseudo = len(cfg.pseudo) if cfg.pseudo is not None else 0|0 -> 1|1":
        "the 0 is taken only when cfg.pseudo is None, where the next line makes pseudo_batch 0 too: MixedBatchSampler then asks its pseudo stream for bu * world * steps = 0 indices, and _stream returns an empty array for need == 0 before it draws from the rng (so the labeled stream's draws are unchanged), each step's pseudo part is uns[:0] (bu == 0), and n_pseudo (self.nu) is read nowhere else (MixedDataset's length comes from cfg.pseudo): the same batches, bit for bit",
    "run_epoch|bar = tqdm(total=t.steps_per_epoch, desc=f\"{cfg.name} epoch {epoch + 1}/{cfg.optim.epochs}\", leave=False,|False -> True|1":
        "display only: whether a finished epoch's progress bar stays on the terminal (utils.tqdm shows no bar at all off a terminal); no history row, saved state, log line, TensorBoard value or returned model changes",
    "run_epoch|disable=t.rank != 0, mininterval=2.0)|2.0 -> 3.0|1":
        "display only: how often the progress bar redraws on a terminal (utils.tqdm shows no bar off a terminal); no history row, saved state, log line, TensorBoard value or returned model changes",
    "inputs|x = b.x.to(cfg.device, non_blocking=True)|True -> False|1":
        "speed only: on the CPU (and for x that decode_on already put on the device) .to returns the same tensor either way, no copy; on CUDA non_blocking only lets a copy from pinned memory overlap the host, and the copy is queued on the current stream before every kernel that reads x, so the values trained on are the same",
    "batch_loss|target = b.soft.to(cfg.device, non_blocking=True)|True -> False|1":
        "speed only: on the CPU .to returns the same tensor either way, no copy; on CUDA non_blocking only lets a copy from pinned memory overlap the host, and the copy is queued on the current stream before the loss kernels that read it, so the loss and its gradients are the same",
    "_gauss1d|if sigma <= 1e-15:  # scipy leaves the axis alone|<= -> <|1":
        "differs only at sigma == 1e-15 exactly, where the mutant filters with r = int(4e-15 + 0.5) = 0: t = [0], w = [exp(-5e29 * 0 * 0)] = [1.0], p = x.index_select of arange(0, n) = x, out = x * 1.0 == x bit for bit (sign of -0.0 and NaN kept); checked torch.equal and signbit for sigma 1e-15, 1e-16, 0, both dims, both modes",
    "_gauss1d|out = out + (p.narrow(dim, r - j, n) + p.narrow(dim, r + j, n)) * w[r + j]|+ -> -|3":
        "occurrence 3 in ast.walk's breadth-first order is w[r + j] -> w[r - j] (the r + j inside p.narrow is one level deeper): the taps are exactly symmetric, w = exp(c * t * t) with (c * -j) * -j == (c * j) * j in IEEE arithmetic, divided by the same sum; checked w[r + j] == w[r - j] bit for bit for 400 sigmas in 0.05..20 at truncate 3 and 4",
    "glass_shuffle|if rows <= 0 or cols <= 0:|<= -> <|1":
        "rows < 0 instead of rows <= 0: differs only when rows == 0 (cols > 0), where the body runs on empty row ranges: hs is [0, 1], dst empty, src = arange (identity), done all True, flat.gather(identity) == y; when cols < 0 the second test still returns. " + _GLASS_CHECKED + " (including rows == 0)",
    "glass_shuffle|if rows <= 0 or cols <= 0:|<= -> <|2":
        "cols < 0 instead of cols <= 0: differs only when cols == 0 (rows > 0), where the body runs with empty column ranges: dst empty, src = identity, the image unchanged. " + _GLASS_CHECKED + " (including cols == 0)",
    "glass_shuffle|looped = (sh >= delta + 1) & (sh <= h - delta) & (sw >= delta + 1) & (sw <= w - delta)|- -> +|1":
        _looped_wider("sh <= h + delta: source rows below h - delta") + _GLASS_CHECKED,
    "glass_shuffle|looped = (sh >= delta + 1) & (sh <= h - delta) & (sw >= delta + 1) & (sw <= w - delta)|- -> +|2":
        _looped_wider("sw <= w + delta: source columns right of w - delta") + _GLASS_CHECKED,
    "glass_shuffle|looped = (sh >= delta + 1) & (sh <= h - delta) & (sw >= delta + 1) & (sw <= w - delta)|+ -> -|1":
        "sh >= delta - 1: `before` also requires sh > hs or sh == hs, and hs >= delta + 1, so sh >= delta + 1 already holds wherever `before` can be true: the factor never decides anything. " + _GLASS_CHECKED,
    "glass_shuffle|looped = (sh >= delta + 1) & (sh <= h - delta) & (sw >= delta + 1) & (sw <= w - delta)|+ -> -|2":
        _looped_wider("sw >= delta - 1: source columns delta - 1 and delta") + _GLASS_CHECKED,
    "motion_blur_with_angle|kernel = torch.exp(-(i**2) / (2 * sigma**2)) / (math.sqrt(2 * math.pi) * sigma)|* -> /|1":
        "WEAKER (up to rounding): the constant factor 1 / (sqrt(2 pi) sigma) becomes sigma / sqrt(2 pi), and the next line divides by kernel.sum(), cancelling it exactly in real arithmetic; in float64 the weights move by <= 2 ulp (all 15 table (radius, sigma) pairs checked), the size of the unmutated kernel's own gap to imagecorruptions' getMotionBlurKernel (torch exp and sum differ from numpy's by 1-2 ulp; it is bit-identical only for (6, 1), (9, 2.5), (10, 1), (12, 3)), so no reference can decide between them",
    "motion_blur_with_angle|kernel = torch.exp(-(i**2) / (2 * sigma**2)) / (math.sqrt(2 * math.pi) * sigma)|2 -> 3|2":
        "WEAKER (up to rounding): sqrt(2 pi) -> sqrt(3 pi) in the constant factor, cancelled by the normalisation kernel / kernel.sum() on the next line; the weights move by <= 3 ulp (all 15 table pairs checked), as small as the unmutated kernel's own 1-2 ulp gap to getMotionBlurKernel",
    "motion_blur|if calibration == \"imagenet-c\":|== -> !=|1":
        "WEAKER (up to rounding): the branches differ only by the /255 * 255 round trip (same clamps). Exhaustive over grey levels: (y / 255) * 255 == y for 10^7 uniform y in [0, 255) and for every integer 0..255, and it is monotone, so the truncated grey level changes only where y is 1 ulp below k and the round trip lands on k: only k = 1, 2, 4, ..., 128 (checked k - 1, 2, 3 ulp for all k); the float output moves only where the round trip is inexact (none in the 10^7). Reaching y = 2^j - 1 ulp needs a constant region whose kernel sum rounds just below 1, and our y differs from the references' by ulps there (kernel not bit-identical for most tables), so no reference test can pin those points",
    "MixedDataset._prepared_batch|if any(ds._prepared is None for ds, _ in parts) or len({ds._prepared.shape[1:] for ds, _ in parts}) > 1:|1 -> 2|2":
        "occurrence 2 (ast.walk breadth-first) is shape[1:] -> shape[2:] (occurrence 1, the > 1, is killed by test_a_step_of_grey_labeled_and_rgb_pseudo_images_is_collated_item_by_item): every _prepared is (N, size, size, C) (ImageDataset pads or prepare()s each small image to size x size, data/transforms.py prepare_batch / prepare), so (size, C) differs between two sets exactly when (size, size, C) does",
    "MixedBatchSampler.__iter__|b = uns[s * gu + self.rank * self.bu : s * gu + (self.rank + 1) * self.bu] if self.bu else uns[:0]|0 -> 1|1":
        "uns[:0] -> uns[:1] is reached only when bu == 0, where gu = 0 and uns = _stream(nu, 0, rng) + nl is already empty (need 0 returns np.zeros(0)), so uns[:1] is the same empty array",
    "_load.no_seed|if any(o.split(\"=\", 1)[0].strip() == \"seed\" for o in given):|1 -> 2|1":
        "str.split(\"=\", 2)[0] equals str.split(\"=\", 1)[0] for every string: maxsplit only changes the later parts, never the first",
    "|REVISION = 3|3 -> 4|1":
        "cache-key version only: corruption_sets.build_c puts it in the built set's spec (spec['calibrated_revision']), whose sha256 names the cache folder; its one role is to differ from the revisions before it (1, 2), which 4 does as well as 3: the same images are built, only a never-before-used folder name changes",
    **{f"_elastic|idx = np.reshape(gy + dy[..., None], (-1, 1)), np.reshape(gx + dx[..., None], (-1, 1)), np.reshape(gz, (-1, 1))|1 -> 2|{k}":
       "occurrences 4-6 in ast.walk's breadth-first order are the 1s inside the three -1s (one level deeper than the three plain 1s, occurrences 1-3, killed): reshape(..., (-2, 1)); numpy (2.4.6) takes any negative size as the one unknown dimension, so the same (N, 1) array (as the reshape(-1) entries of EQUIVALENT)" for k in (4, 5, 6)},
    "_clipped_zoom|h = img.shape[0]|0 -> 1|1":
        "differs only on non-square images, which never reach it: _clipped_zoom is the reference's square clipped_zoom (one top for both axes), called by corrupt_calibrated (zoom_blur, _snow), whose contract is a square image (docstring) and whose only caller, corruption_sets.corrupt_one <- _build_cell, reads clean.npy = np.stack of prepare(img, size) (size x size x 3); on a rectangle the unmutated function already returns an h x h block, so zoom_blur / snow raise (test_calibrated_snow_on_a_rectangle... in test_onthefly_weather.py swaps in a per-axis zoom for that reason)",
    "_clipped_zoom|t = (z.shape[0] - h) // 2|0 -> 1|1":
        "z = zoom(img[top:top+ch, top:top+ch]) is square for a square img (the only input, see the _clipped_zoom|h = img.shape[0] entry), so z.shape[1] == z.shape[0]",
    "_spatter|colour = np.concatenate([v / 255.0 * np.ones_like(m[..., :1]) for v in (175, 238, 238)], axis=2)|* -> /|1":
        "v / 255.0 / ones vs v / 255.0 * ones: dividing and multiplying by float32 1.0 are both exact identities (IEEE), same float32 array",
    "_spatter|colour = np.concatenate([v / 255.0 * np.ones_like(x[..., :1]) for v in (63, 42, 20)], axis=2) * m[..., None]|* -> /|2":
        "occurrence 2 (breadth-first) is the inner v / 255.0 * ones_like(x[..., :1]) (occurrence 1, the outer * m, is killed): division and multiplication by float32 1.0 are exact identities",
    "_spatter|return cv2.cvtColor(np.clip(y + m * colour, 0, 1), cv2.COLOR_BGRA2BGR)|1 -> 2|1":
        "clip(v, 0, 2) vs clip(v, 0, 1): _spatter's only caller, corrupt_calibrated, clips its result again with np.clip(out, 0, 1) (BGRA2BGR only drops alpha), and clip(clip(v, 0, 2), 0, 1) == clip(v, 0, 1) for every float32 v, NaN staying NaN",
    "_spatter|dist = cv2.distanceTransform(255 - cv2.Canny(liquid, 50, 150), cv2.DIST_L2, 5)|50 -> 51|1":
        "Canny (L1 gradient, aperture 3) keeps a pixel as a weak edge iff m > low with m = |Sobel_x| + |Sobel_y| an integer that is always even (Sobel_x = (p02 - p00) + 2 (p12 - p10) + (p22 - p20), Sobel_y = (p20 - p00) + 2 (p21 - p01) + (p22 - p02), so Sobel_x + Sobel_y is congruent to 2 (p22 - p00), i.e. even, and |a| + |b| has the parity of a + b; any border extrapolation gives integer p's too), so m > 50 iff m > 51; checked: Canny(v, 49, 150) differs from (50, 150) on 232 of 300 random 8-bit layers, (51, 150) on none, and no |Sobel_x| + |Sobel_y| was odd",
    "_spatter|dist = cv2.distanceTransform(255 - cv2.Canny(liquid, 50, 150), cv2.DIST_L2, 5)|150 -> 151|1":
        "as 50 -> 51: the strong-edge test is m > high with m always even, so m > 150 iff m > 151 (checked: (50, 149) differs on 173 of 300 random layers, (50, 151) on none)",
    "_frost|layer = cv2.resize(layer, (0, 0), fx=scale, fy=scale)|0 -> 1|1":
        "dsize (1, 0): OpenCV's resize computes the size from fx, fy whenever dsize.empty() (width <= 0 or height <= 0), which (1, 0) is; checked identical on the five frost pictures at scales 0.2, 0.3, 0.5",
    "_frost|layer = cv2.resize(layer, (0, 0), fx=scale, fy=scale)|0 -> 1|2":
        "dsize (0, 1): empty (height 0 or width 0), so the size comes from fx, fy as with (0, 0); checked identical as above",
    "_frost|return np.uint8(np.clip(c[0] * img.astype(np.float64) + c[1] * layer, 0, 255))|0 -> 1|1":
        "occurrence 1 (breadth-first) is the clip's lower bound: clip(v, 1, 255) differs only where v < 1, but v = c[0] img + c[1] layer >= c[1] min(layer) >= 0.2 * 14 = 2.8: c[1] >= 0.2 in both tables, np.random.randint(5) picks frost1-5, whose darkest pixel is 14 (frost5.jpg; 15, 55, 55, 15 the others) and cv2's bilinear resize is a convex combination of source pixels",
    "_defocus|return np.stack([cv2.filter2D(x[..., d], -1, kernel) for d in range(3)], axis=-1)|1 -> 2|2":
        "occurrence 2 (breadth-first) is filter2D's ddepth -1 -> -2 (occurrence 1 is the killed axis=-1): OpenCV takes any negative ddepth as the source's depth (filter2D docs, 'when ddepth=-1 the output has the same depth as the source'; code: if (ddepth < 0) ddepth = sdepth); checked bit-identical on 800 image/kernel pairs",
    "_defocus|span = np.arange(-8, 9) if radius <= 8 else np.arange(-radius, radius + 1)|8 -> 9|2":
        "occurrence 2 is arange(-8, 9) -> arange(-9, 9): the 18 x 18 kernel is the 17 x 17 one (bit-identical) plus a leading zero row and column (radii <= 3, 3x3 blur), and filter2D's anchor (9, 9) is the same centre, so the same convolution in exact arithmetic; only OpenCV's DFT size differs (48 vs 50 at 32 px), changing outputs by <= 1e-15, which moves a grey level only if sum(w_i k_i) is within ~1e-13 of an integer: none found (83k random / two-level / one-dot uint8 images x all 10 kernels), and for CIFAR severity 1's 3x3 kernel (w * 2^33 integers) no uint8 neighbourhood sums to an integer > 0 at all (checked exhaustively). WEAKER than the others: an argument up to rounding",
    "corrupt_calibrated|m = x.mean(axis=(0, 1), keepdims=True)|True -> False|1":
        "keepdims only shapes the per-channel mean (1, 1, 3) vs (3,); both broadcast against the (H, W, 3) image along the channel axis, so (x - m) * c + m is the same array element by element",
    "_copy_shift.copy_shift|@njit(cache=False)|False -> True|1":
        "cache=True only stores numba's compiled machine code on disk for the next process; the same function is compiled from the same source, same results",
    "_cv2_gaussian_kernel|return cv2.getGaussianKernel(k, sigma).reshape(-1)|1 -> 2|1":
        "numpy's reshape(-2) infers the length like reshape(-1) (any negative is the unknown dimension): same 1-D kernel",
    "cv2_warp_perspective|return torch.floor(out + 0.5).clamp(0, 255).to(torch.uint8)|255 -> 256|1":
        "out is a convex combination (bilinear weights >= 0, sum 1) of values <= 255, so floor(out + 0.5) <= 255: the upper clamp never binds",
    "cv2_gaussian_blur|return torch.floor(x + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)|255 -> 256|1":
        "the Gaussian kernel is positive and sums to 1 (getGaussianKernel normalises), so x <= 255 (+1e-13) and floor(x + 0.5) <= 255: the upper clamp never binds",
    # native resolution (issue 34, item 3): bench.onthefly.params and the magnified layers of bench.onthefly.weather
    "scaled|half_width, window = (8, 3) if radius <= 8 else (radius, 5)|8 -> 9|1":
        "only a radius in (8, 9] would change branch, and ImageNet-C's defocus radii (deterministic.IMAGENET, the one table scaled) are 3, 4, 6, 8 and 10",
    "_magnified|recompute_scale_factor=False, antialias=scale < 1).permute(0, 2, 3, 1)|< -> <=|1":
        "the interpolation runs only when scale != 1, so scale < 1 and scale <= 1 agree wherever it runs",
    "_magnified|recompute_scale_factor=False, antialias=scale < 1).permute(0, 2, 3, 1)|1 -> 2|2":
        "WEAKER: turns antialiasing on for magnifications 1 < scale < 2, where torch's antialiased bilinear kernel has the plain one's support (max(1, 1 / scale) = 1): the same weights up to float32 rounding (1.5e-6 apart on a random 37 -> 50 px layer)",
    "_on_the_fly_logits|scale = scale_for(clean.shape[1], calibration)|1 -> 2|1":
        "a built set's clean images are size x size (corruption_sets.clean_images stacks prepare(img, size), square), so their height is their width",
    "motion_blur_with_angle|pad = int(torch.where(live, torch.maximum(dy.abs(), dx.abs()), torch.zeros_like(dy)).max()) if n else 0|0 -> 1|1":
        "n == 0: an empty batch, whose padding no loop reads (there is no image to shift); the result is the empty batch either way",
    "_hsv2rgb|picks = [case == k for k in range(5)]|5 -> 6|1":
        "adds picks[5] (case == 5), which nothing reads: the loop takes cases 4..0 over case 5's value",
    "_resized_photo|if ph < h and pw >= w:|< -> <=|1":
        "only ph == h newly enters the branch, where scale = h / ph = 1.0, the value the fall-through gives (pw >= w)",
    "_resized_photo|elif ph >= h and pw < w:|< -> <=|1":
        "only pw == w newly enters the branch (ph >= h), where scale = w / pw = 1.0, the fall-through's value",
    "_resized_photo|elif ph < h and pw < w:|and -> or|1":
        "the branch is reached only with (ph < h, pw < w) or (ph >= h, pw >= w), where `and` and `or` agree",
    "_resized_photo|elif ph < h and pw < w:|< -> <=|1":
        "reached only with (ph < h, pw < w) or (ph >= h, pw >= w); ph == h implies pw >= w there, so the condition is unchanged",
    "_resized_photo|elif ph < h and pw < w:|< -> <=|2":
        "reached only with (ph < h, pw < w) or (ph >= h, pw >= w); in the latter ph < h is false, so the condition is unchanged",
    "_resized_photo|return cv2.resize(photo, (0, 0), fx=scale, fy=scale)|0 -> 1|1":
        "cv2.resize computes dsize from fx, fy whenever dsize.empty() (either side <= 0): (1, 0) is empty as (0, 0) is",
    "_resized_photo|return cv2.resize(photo, (0, 0), fx=scale, fy=scale)|0 -> 1|2":
        "cv2.resize computes dsize from fx, fy whenever dsize.empty() (either side <= 0): (0, 1) is empty as (0, 0) is",
    "_frost_layers|@lru_cache(maxsize=16)|16 -> 17|1":
        "cache capacity only: a recomputed entry is the same value",
    "frost|if bool((span <= 0).any()):|<= -> <|1":
        "span is never 0: imagenet-c's photo side is ceil(1.1 * max(side, image side)) >= image side + 1; calibrated's is round(ph * scale) with scale >= (h + 1) / ph, so >= h + 1",
    "_zoom_taps|step = (crop - 1) / (out - 1) if out > 1 else 0.0|0.0 -> 1.0|1":
        "the else applies only when out == 1, where cc = np.arange(1) * step = [0.] for any step",
    "_zoom_taps|i0 = np.minimum(np.floor(cc).astype(np.int64), crop - 1)|- -> +|1":
        "cc <= (crop - 1) up to one ulp, so floor(cc) <= crop - 1 < crop + 1: the minimum never binds either way",
    "_water_relief|_, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)|20 -> 21|2":
        "THRESH_TRUNC ignores maxval (dst = min(src, thresh)); the first 20 (thresh) is the one tested",
    "fog|size = 1 << (max(*_grid(h, w, scale), 3) - 1).bit_length()|3 -> 4|1":
        "next power of two of 3 and of 4 are both 4, and for max(h, w) >= 4 the constant is not the max",
    "fog|return _f32((y * top / (top + strength)).clamp(0, 1) * 255)|1 -> 2|1":
        "y <= top + strength (plasma <= 1) and every rounding is monotone, so y * top / (top + strength) <= top <= 1 for 0..255 images: the upper clamp never binds",
    "spatter|return _f32(((y * (1 - m)).double() + colour * m.double()).clamp(0, 1) * 255)|1 -> 2|1":
        "mud: m is 0 or in [0.8, ~1], y <= 1, colour <= 63/255: y (1 - m) + colour m <= max(y, (1 - m) + 0.25 m) <= 1, the upper clamp never binds for 0..255 images",
    "spatter|return (y * (1 - m) + colour * m).clamp(0, 1) * 255  # calibrated._spatter: float32|1 -> 2|1":
        "as the float64 line: a convex mix of y <= 1 and colour <= 63/255 (m 0 or >= 0.8) never exceeds 1 for 0..255 images",
    "_water_relief|dist = cv2.distanceTransform(255 - cv2.Canny(layer, 50, 150), cv2.DIST_L2, 5)|50 -> 51|1":
        "Canny's L1 magnitude |dx| + |dy| of 3x3 Sobel is always even (dx and dy are both congruent mod 2 to the sum of the four corner pixels), and it is compared as m > low: m > 50 iff m > 51",
    "_water_relief|dist = cv2.distanceTransform(255 - cv2.Canny(layer, 50, 150), cv2.DIST_L2, 5)|150 -> 151|1":
        "as for 50: the L1 Sobel magnitude is even, so m > 150 iff m > 151",
    "|_POISSON_ROUNDS = 64  # PTRS accepts >= 87% a round: 64 rounds leave a pending element with probability < 1e-56|64 -> 65|1":
        "a 65th rejection round is never reached: after 64 rounds an element is still pending with probability < 1e-56",
    "poisson|vr = 0.9277 - 3.6224 / (b - 2)|/ -> *|1":
        "a smaller squeeze (vr here below 0: the fast path never taken) only sends more draws to the exact acceptance test, which accepts the same k (the squeeze lies inside the acceptance region: Hormann 1993); pinned against numpy's PTRS on 4,000 draws",
    "poisson|vr = 0.9277 - 3.6224 / (b - 2)|3.6224 -> 4.6224|1":
        "a smaller squeeze only sends more draws to the exact acceptance test, which accepts the same k (Hormann 1993); pinned against numpy's PTRS on 4,000 draws",
    "poisson|vr = 0.9277 - 3.6224 / (b - 2)|2 -> 3|1":
        "a smaller squeeze only sends more draws to the exact acceptance test, which accepts the same k (Hormann 1993); pinned against numpy's PTRS on 4,000 draws",
    "poisson|fast = (us >= 0.07) & (V <= vr)|0.07 -> 1.07|1":
        "us < 0.5 < 1.07: the squeeze is never taken, and the exact acceptance test accepts the same k (Hormann 1993)",
    "poisson|fast = (us >= 0.07) & (V <= vr)|>= -> >|1":
        "differs only at us == 0.07 exactly, which 0.5 - |u - 0.5| with u a multiple of 2^-53 cannot equal (0.07's double needs 58 bits)",
    "poisson|fast = (us >= 0.07) & (V <= vr)|<= -> <|1":
        "differs only at V == vr exactly (probability 2^-53 per draw), where the exact test accepts too",
    "poisson|out = (kk < 0) | ((us < 0.013) & (V > us))|< -> <=|2":
        "differs only at us == 0.013 exactly, which 0.5 - |u - 0.5| with u a multiple of 2^-53 cannot equal",
    "poisson|out = (kk < 0) | ((us < 0.013) & (V > us))|> -> >=|1":
        "differs only at V == us exactly (probability 2^-53 per draw)",
    "poisson|slow = torch.log(V) + log_invalpha - torch.log(a / (us * us) + b) <= -l + kk * loglam - torch.lgamma(kk + 1)|<= -> <|1":
        "differs only where the two float64 sides are equal (probability ~2^-52 per draw)",
    "poisson|todo = (u > cdf).nonzero().squeeze(1)|> -> >=|1":
        "differs only at u == cdf exactly, a float64 sum of the Poisson terms against a multiple of 2^-53 (probability ~2^-53 per element)",
    "poisson|if not (p > 0).any():  # the CDF's float64 sum stopped short of u (u within 2^-52 of 1)|> -> >=|1":
        "the guard is reached only when u lies within 2^-52 of 1 above the CDF's float64 sum (probability ~2^-52 per element)",
    "impulse_noise|flipped = rng.uniform(STREAMS[\"noise\"], shape) <= c|<= -> <|1":
        "differs only at u == c exactly: the tables' c (0.01-0.27) are doubles needing more than 53 fractional bits, which a multiple of 2^-53 cannot equal",
    "impulse_noise|salted = rng.uniform(STREAMS[\"salted\"], shape) <= 0.5|<= -> <|1":
        "differs only at u == 0.5 exactly (probability 2^-53 per element)",
    "impulse_noise|return _f32(y.clamp(0, 1) * 255)|1 -> 2|1":
        "y is 0, 1 or x / 255 <= 1: the upper clamp never acts",
    "glass_blur|y = torch.floor(_gauss2d(x.double() / 255.0, sigma) * 255).clamp(0, 255)  # np.uint8(gaussian(x / 255) * 255)|255 -> 256|1":
        "a Gaussian filter's output is a convex combination of values <= 1: floor(... * 255) <= 255, the clamp never acts",
    "glass_blur|return _f32(_gauss2d(y / 255.0, sigma).clamp(0, 1) * 255)|1 -> 2|1":
        "a Gaussian filter of values <= 1 stays <= 1: the upper clamp never acts",
    "glass_blur|steps = (iterations, max(y.shape[1] - 2 * delta, 0), max(y.shape[2] - 2 * delta, 0), 2)|0 -> 1|1":
        "unreachable: built images are at least 32 px (data/transforms.py) and delta at most 4 (the tables), so H - 2 delta > 0",
    "glass_blur|steps = (iterations, max(y.shape[1] - 2 * delta, 0), max(y.shape[2] - 2 * delta, 0), 2)|0 -> 1|2":
        "unreachable: built images are at least 32 px (data/transforms.py) and delta at most 4 (the tables), so W - 2 delta > 0",
    "glass_blur|steps = (iterations, max(y.shape[1] - 2 * delta, 0), max(y.shape[2] - 2 * delta, 0), 2)|1 -> 2|1":
        "the shape's second axis is H (images are square, H = W: data/transforms.py prepares size x size)",
    "motion_blur|return _f32(y.clamp(0, 255))|255 -> 256|1":
        "the motion kernel's weights are normalised and cut short, never above 1 in sum: the blur of values <= 255 stays <= 255",
    "motion_blur|return _f32((y / 255.0).clamp(0, 1) * 255)  # calibrated.py: _motion(img) / 255, then clip(0, 1) * 255|1 -> 2|1":
        "as above: y / 255 <= 1, the upper clamp never acts",
    "_defocus|span = np.arange(-8, 9) if radius <= 8 else np.arange(-radius, radius + 1)|<= -> <|1":
        "differs only at radius == 8; every defocus radius of CIFAR / TINY (the only source of params) is <= 3 (pinned in tests/bench/test_calibrated.py)",
    "_defocus|span = np.arange(-8, 9) if radius <= 8 else np.arange(-radius, radius + 1)|8 -> 9|1":
        "radius <= 9 vs <= 8 differs only for 8 < radius <= 9; the tables' radii are <= 3",
    "_defocus|span = np.arange(-8, 9) if radius <= 8 else np.arange(-radius, radius + 1)|1 -> 2|1":
        "else branch (radius > 8) unreachable: the tables' radii are <= 3",
    "_defocus|span = np.arange(-8, 9) if radius <= 8 else np.arange(-radius, radius + 1)|+ -> -|1":
        "else branch (radius > 8) unreachable: the tables' radii are <= 3",
    "_defocus|span = np.arange(-8, 9) if radius <= 8 else np.arange(-radius, radius + 1)|drop unary -|2":
        "the -radius of the else branch (radius > 8), unreachable: the tables' radii are <= 3 (occurrence 1 is the reachable -8)",
    "_defocus|ksize = (3, 3) if radius <= 8 else (5, 5)|<= -> <|1":
        "differs only at radius == 8; the tables' radii are <= 3",
    "_defocus|ksize = (3, 3) if radius <= 8 else (5, 5)|8 -> 9|1":
        "differs only for 8 < radius <= 9; the tables' radii are <= 3",
    "_defocus|ksize = (3, 3) if radius <= 8 else (5, 5)|5 -> 6|1":
        "else branch (radius > 8) unreachable: the tables' radii are <= 3",
    "_defocus|ksize = (3, 3) if radius <= 8 else (5, 5)|5 -> 6|2":
        "else branch (radius > 8) unreachable: the tables' radii are <= 3",
    "_spatter|_, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)|20 -> 21|2":
        "maxval of THRESH_TRUNC, which OpenCV ignores (dst = thresh if src > thresh else src); occurrence 1, the threshold, is killed by test_spatter_on_chosen_liquid_layers_is_the_references",
    "_frost|scale = max(scale, (h + 1) / layer.shape[0], (w + 1) / layer.shape[1])|1 -> 2|2":
        "(w + 2) / width never wins the max: images are square (corrupt_calibrated's docstring) and all six imagecorruptions frost pictures are >= 1.33x wider than tall, so (w + 2) / W < (h + 1) / H for h >= 3, and below that the reference scale (>= 0.2 of >= 315 px) wins",
    "_frost|scale = max(scale, (h + 1) / layer.shape[0], (w + 1) / layer.shape[1])|+ -> -|2":
        "(w - 1) / width is below (w + 1) / width, which never wins the max (see the line above)",
    "as_saved|Image.fromarray(img).save(buf, \"JPEG\", quality=quality, optimize=True)|True -> False|1":
        "optimize only picks optimal Huffman tables (lossless entropy coding); decoded pixels are identical (checked: 60 random 32-100 px images, quality 85)",
    "_zoom_axis|step = (crop - 1) / (out - 1) if out > 1 else 1.0|1.0 -> 2.0|1":
        "out == 1 only for a 1-px axis (out = round(crop * factor) >= size, as crop >= size / factor), where first = 0 either way (0, or (1 - 1) // 2), so cc = [0 * step] = [0]: step is never used",
    "_zoom_axis|step = (crop - 1) / (out - 1) if out > 1 else 1.0|1 -> 2|1":
        "the mutated 1 is the test's (out > 2): out == 2 needs crop * factor in [1.5, 2.5), i.e. crop 2 with factor < 1.25 (every factor in the tables is <= 1.3, so crop 1 gives out 1), and then (crop - 1) / (out - 1) is 1.0 too",
    "_zoom_axis|first = (out - size) // 2 if centred else 0  # calibrated.py keeps the centre, imagecorruptions the top-left|2 -> 3|1":
        "out - size is 0 or 1 for every factor the tables use (crop < size / factor + 1 so crop * factor < size + 1.31; crop * factor >= size): // 2 and // 3 both give 0 (checked for sizes 1-4096 and all 28 factors)",
    "zoom_blur|factors, centred = np.arange(*c), False|False -> True|1":
        "centred only sets first = (out - size) // 2, which is 0 for every size at the factors used (out - size is 0 or 1, see the _zoom_axis first mutant): centred and top-left crops are the same rows and columns",
    "zoom_blur|factors, centred = np.arange(1, c, 0.01), True  # calibrated.py: np.arange(1, END, 0.01), centred crop|True -> False|1":
        "as the False -> True one: with factors <= 1.25, out - size is 0 or 1, so the centred crop starts at 0 like the top-left one",
    "_correlate|r = kernel.shape[0] // 2|0 -> 1|1":
        "both callers pass square kernels (torch.outer(k, k) in _gaussian; _disk's meshgrid(span, span) blurred by cv2.GaussianBlur, which keeps the shape): shape[1] == shape[0]",
    "_correlate|h, w = planes.shape[-2:]|drop unary -|1":
        "planes is always 4-D [P, 1, H, W] (from _planes): shape[2:] == shape[-2:]",
    "_correlate|size = [_fft_size(n) for n in padded.shape[-2:]]  # zeros past the padding leave the kept part unwrapped|drop unary -|1":
        "padded is F.pad of the 4-D planes, 4-D too: shape[2:] == shape[-2:]",
    "_unplanes|return y.reshape(n, -1, *y.shape[-2:]).permute(0, 2, 3, 1)|drop unary -|2":
        "y is always _correlate's 4-D [P, 1, H, W] output: shape[2:] == shape[-2:]",
    "_nearest_index|idx.append(min(int(pos), size_in - 1))|- -> +|1":
        "the clamp never binds: the last position is (out - 0.5) * in / out = in - step / 2 up to rounding far below step / 2, so int(pos) <= in - 1 (checked for every in 1-599, out 1-699)",
    "_box_taps|taps = max(int((row != 0).sum()) for row in m)|0 -> 1|1":
        "no weight is 1 (a tap in the box weighs int(0.5 + 2^22 / n) >= 2 for n < 2^21 taps, one outside 0; checked for all sizes 1-256 x 1-256), so taps becomes size_in: the extra taps point at column 0 with weight 0 and add +0.0 after the same nonzero terms, exactly",
    "best_marks|for measure, sub in head.groupby(\"measure\", sort=False):|False -> True|1":
        "marks is a set and each measure's decision reads only its own rows (sub) and the baseline label, so the order the measures are visited in cannot change the set returned",
    "best_marks|higher = bool(sub.higher_is_better.iloc[0])|0 -> 1|1":
        "sub has >= 2 rows here (len(sub) < 2 skipped just above) and best_marks is called only by compare() on the headline_tests frame, whose rows of one measure all carry that Measure's higher_is_better (_row), so rows 0 and 1 agree",
    "across_seeds|row = {\"group\": key, \"measure\": measure, \"label\": sub.label.iloc[0], \"seeds\": len(vals), \"value\": mean,|0 -> 1|1":
        "across_seeds is called only by compare() on the headline_tests frame (one row per eval and measure); sub holds one row per group member (>= 2, seed_groups keeps groups of >= 2 labels) of one measure, all with that Measure's label",
    "across_seeds|\"higher_is_better\": bool(sub.higher_is_better.iloc[0]), \"se\": np.nan, \"dof\": np.nan,|0 -> 1|1":
        "as for the label: sub has >= 2 rows of one measure from headline_tests, all with that Measure's higher_is_better, so rows 0 and 1 agree",
    "across_seeds|\"mde\": np.nan, \"usual_effect\": sub.usual_effect.iloc[0] if \"usual_effect\" in sub else np.nan,|0 -> 1|1":
        "as for the label: sub has >= 2 rows of one measure from headline_tests, all with usual_effect(m.metric) of that Measure, so rows 0 and 1 agree",
    # the torch generators' building blocks (bench.onthefly.deterministic), each checked exhaustively where it says so
    "_box_weights|ks = [1.0 if -0.5 < (x + xmin - center + 0.5) * ss <= 0.5 else 0.0 for x in range(xmax - xmin)]|< -> <=|1": _BOX_WINDOW,
    "_box_weights|ks = [1.0 if -0.5 < (x + xmin - center + 0.5) * ss <= 0.5 else 0.0 for x in range(xmax - xmin)]|0.5 -> 1.5|2": _BOX_WINDOW,
    "_box_weights|ks = [1.0 if -0.5 < (x + xmin - center + 0.5) * ss <= 0.5 else 0.0 for x in range(xmax - xmin)]|1.0 -> 2.0|1": "the taps' weights are divided by their sum (ww) next: 2 for every tap in the box is 1 for each",
    "_box_weights|xmax = min(int(center + support + 0.5), size_in)|0.5 -> 1.5|1": _BOX_WINDOW + " (the one more tap on "
        "the right lies beyond the box: weight 0)",
    "_box_weights|k = k / ww if ww != 0.0 else k|0.0 -> 1.0|1": "k / 1.0 is k: the branch differs only in name",
    "_box_resize|x = torch.floor((acc + (1 << (_PRECISION_BITS - 1))) / (1 << _PRECISION_BITS)).clamp_(0, 255)|"
    "255 -> 256|1": "the clamp never acts at 255: a row's weights sum to 2^22 within half a unit per tap, so 255 x "
        "that plus 2^21, over 2^22, floors to 255 for fewer than 8,000 taps",
    "_fft_size|for m in range(n, 2 * n + 1):|+ -> -|1": _FFT_BOUND,
    "_fft_size|for m in range(n, 2 * n + 1):|1 -> 2|1": _FFT_BOUND,
    "_fft_size|for m in range(n, 2 * n + 1):|2 -> 3|1": _FFT_BOUND,
    "_fft_size|k //= p|// -> /|1": "k stays an exactly represented float (m < 2^53, divided only by its own factors): "
        "the same k == 1 test (checked for n up to 5,000)",
    "EvalContext.forward|return self.finite(padded_forward(self.model, x.to(self.device, non_blocking=True), self.bs).float().cpu())|True -> False|1":
        "non_blocking only lets a pinned host-to-device copy overlap; the stream orders it before the forward pass, so the logits are the same (on the CPU it is a no-op)",
    "corrupt_one|if out.shape != img.shape:  # some corruptions return a cropped/resized frame on odd sizes|!= -> ==|1":
        "imagecorruptions-imaug keeps the input's height and width (all 19 corruptions x 5 severities on 32x32 .. 99x40, 1 and 3 channels), so shapes differ only in channels, where the resize to the same (W, H) and PIL's Image.resize returns self.copy() when the size is unchanged: both branches give the same array",
    "run_tasks|bar = tqdm(total=len(tasks), desc=desc, leave=False, mininterval=2.0)|False -> True|1":
        "how the progress bar is shown, not what is built",
    "run_tasks|bar = tqdm(total=len(tasks), desc=desc, leave=False, mininterval=2.0)|2.0 -> 3.0|1":
        "how the progress bar is shown, not what is built",
    "_official|for cell in tqdm(cells, desc=f\"{ctx.em.label} -C\", leave=False, mininterval=2.0):|False -> True|1":
        "how the progress bar is shown, not what is scored",
    "_official|for cell in tqdm(cells, desc=f\"{ctx.em.label} -C\", leave=False, mininterval=2.0):|2.0 -> 3.0|1":
        "how the progress bar is shown, not what is scored",
    "_built|for c in tqdm(t.corruptions, desc=f\"{ctx.em.label} -C\", leave=False, mininterval=2.0):|False -> True|1":
        "how the progress bar is shown, not what is scored",
    "_built|for c in tqdm(t.corruptions, desc=f\"{ctx.em.label} -C\", leave=False, mininterval=2.0):|2.0 -> 3.0|1":
        "how the progress bar is shown, not what is scored",
    "_official|for p in tqdm([p for p in t.perturbations if p not in absent], desc=f\"{ctx.em.label} -P\", leave=False, mininterval=2.0):|False -> True|1":
        "how the progress bar is shown, not what is scored",
    "_official|for p in tqdm([p for p in t.perturbations if p not in absent], desc=f\"{ctx.em.label} -P\", leave=False, mininterval=2.0):|2.0 -> 3.0|1":
        "how the progress bar is shown, not what is scored",
    "_built|for p in tqdm(t.perturbations, desc=f\"{ctx.em.label} -P\", leave=False, mininterval=2.0):|False -> True|1":
        "how the progress bar is shown, not what is scored",
    "_built|for p in tqdm(t.perturbations, desc=f\"{ctx.em.label} -P\", leave=False, mininterval=2.0):|2.0 -> 3.0|1":
        "how the progress bar is shown, not what is scored",
    "_built.compute|return stats(ctx.logits(np.asarray(seqs).reshape(n * f, *seqs.shape[2:])).reshape(n, f, -1))|1 -> 2|1":
        "numpy reads any negative size as the one inferred dimension: reshape(n, f, -2) == reshape(n, f, -1) (numpy 2.4)",
    "_on_the_fly_logits.local|out.append(lg.numpy().reshape(n, f, -1))|1 -> 2|1":
        "numpy reads any negative size as the one inferred dimension: reshape(n, f, -2) == reshape(n, f, -1) (numpy 2.4)",
    "_on_the_fly_logits.local|one = torch.from_numpy(np.array(clean[:1])).to(ctx.device)|1 -> 2|1":
        "the probe image only sizes the empty block: a sequence of any images of the set has the same number of frames (the 2-image probe gives the same depth)",
    "|ROW_GROUP = 65536|65536 -> 65537|1":
        "ROW_GROUP only decides where Parquet splits a shard into row groups (and how many rows selection.py streams at once): the same rows, statistics and selection (as the n_pending mutants already in EQUIVALENT)",
    "ShardWriter.__init__|self.n_pending = 0|0 -> 1|1":
        "n_pending only decides when a row group is flushed: one row earlier, same rows and statistics (as \"ShardWriter._flush|self.pending, self.n_pending = [], 0|0 -> 1|1\" in EQUIVALENT)",
    "_table|\"topk_class\": pa.FixedSizeListArray.from_arrays(pa.array(cls.reshape(-1).astype(np.int32)), cls.shape[1]),|1 -> 2|2":
        "occurrence 2 is reshape(-1) -> reshape(-2): numpy (2.4.6, no warning even with -W error) takes any negative size as the one unknown dimension, so the same flat array",
    "_table|\"topk_prob\": pa.FixedSizeListArray.from_arrays(pa.array(val.reshape(-1).astype(np.float32)), val.shape[1]),|1 -> 2|2":
        "occurrence 2 is reshape(-1) -> reshape(-2): numpy takes any negative size as the one unknown dimension, so the same flat array",
    "teacher_batches|bar = tqdm(total=len(indices), desc=\"pseudo-labeling\", leave=False, disable=not progress, mininterval=2.0)|False -> True|1":
        "cosmetic, terminal only: whether the finished bar's line stays on screen (leave); nothing in any file, log line or returned value changes, and utils.tqdm shows no bar at all off a terminal",
    "teacher_batches|bar = tqdm(total=len(indices), desc=\"pseudo-labeling\", leave=False, disable=not progress, mininterval=2.0)|2.0 -> 3.0|1":
        "cosmetic, terminal only: how often the bar redraws; its counts (pinned in tests/training/test_label.py) and everything written are the same",
    "figure|xs = np.linspace(lo, hi, 200)|200 -> 201|1":
        "the fit line sampled at 201 points instead of 200 between the same ends (pinned): the same smooth curve, no number, tick, label or point changes",
    "figure|slope, intercept = float(sub.slope.iloc[0]), float(sub.intercept.iloc[0])|0 -> 1|1":
        "figure() is only called with effective_robustness()'s frame (scorecard.build), where every set has >= 2 rows (len(pts) < 2 is skipped) all carrying the one fit's slope: row 1's equals row 0's",
    "figure|slope, intercept = float(sub.slope.iloc[0]), float(sub.intercept.iloc[0])|0 -> 1|2":
        "as above: every row of a set carries the same intercept, and a set has >= 2 rows",
    "figure|if sub.fit_from.iloc[0].startswith(\"published\") and len(pub):|0 -> 1|1":
        "as above: every row of a set carries the same fit_from, and a set has >= 2 rows",
    "figure|ax.scatter([x], [y], marker=figures.MARKERS[i % len(figures.MARKERS)], s=36, zorder=3,|3 -> 4|1":
        "the models' points are drawn above the lines (zorder 2) and below the legend (5) at zorder 3 or 4 alike, and nothing else sits between: the same image",
    "figure|ax.plot(xs, inv_logit(slope * logit(100 * xs) + intercept) / 100, \"-\", c=\"#0969da\", lw=1.2, label=\"fit\")|1.2 -> 2.2|1":
        "cosmetic: the fit line's width in points; its course (pinned), the ticks, labels and points are unchanged",
    "figure|ax.plot(xs, xs, \":\", c=\"#57606a\", lw=1, label=\"y = x\")|1 -> 2|1":
        "cosmetic: the y = x line's width; nothing a reader reads changes",
    "figure|ax.scatter(pub.clean / 100, pub.shifted / 100, c=\"#8c959f\", marker=\"x\", s=22, label=\"published\")|22 -> 23|1":
        "cosmetic: the published crosses' marker area (22 -> 23 pt^2); their positions (pinned) are unchanged",
    "figure|ax.scatter([x], [y], marker=figures.MARKERS[i % len(figures.MARKERS)], s=36, zorder=3,|36 -> 37|1":
        "cosmetic: the models' marker area (36 -> 37 pt^2); positions, markers and legend (pinned) unchanged",
    "figure|fig, ax = plt.subplots(figsize=(4.6, 3.8))|4.6 -> 5.6|1":
        "cosmetic: the panel's width in inches (the page scales panels to its grid); axes, ticks, labels, points and legend text are the same",
    "figure|fig, ax = plt.subplots(figsize=(4.6, 3.8))|3.8 -> 4.8|1":
        "cosmetic: the panel's height in inches; as above",
    "BuildSettings|@dataclass(frozen=True)|True -> False|1":
        "nothing assigns to or hashes a BuildSettings (natural._built makes one and build_a only reads it): frozen or not it behaves alike (the project's _UNMUTATED_RECORD)",
    "build_a|agree = wrong & (preds == preds[0]).all(0) if len(refs) >= 2 else np.zeros_like(wrong)|0 -> 1|2":
        "preds[0] -> preds[1] (occurrence 2 in ast.walk order; occurrence 1 is .all(0)): reached only with >= 2 references, so row 1 exists, and \"every row equals row 1\" is \"every row equals row 0\"",
    "_predict|out = np.full(len(pool_idx), -1, np.int64)|1 -> 2|1":
        "-1 -> -2: the unreadable marker is only ever tested as pred >= 0 / preds >= 0 (readable, ok), and consensus_summary reads preds[0] only where agree, a subset of readable; -2 is as negative as -1",
    "_predict|for x, _, i, _ in iterate_clean(pool, pool_idx, size, 500):|500 -> 501|1":
        "the batch size only groups pool images; each image's top-1 comes from an eval-mode model (train_reference's contract) under no_grad and is written back by its own index, so it does not depend on the batch",
    "_train_val|train = rest if train_limit is None or train_limit >= len(rest) else rest[:train_limit]|>= -> >|1":
        "differs only at train_limit == len(rest), where rest[:train_limit] is rest itself",
    "run|@register(\"attacks\", config=AttacksTask, order=5, validate=validate)|5 -> 6|1":
        "no task has order 6 (orders 0-5 and 10-13): the suite order of every task is unchanged (as fgsm's 4 -> 5)",
    **{"_augment|return TrainAugment(size, False, 0, 0, 0.0, random_crop_pad=max(1, size // CROP_PAD_DIVISOR))|" + m: _RA_OFF for m in ("False -> True|1", "0 -> 1|1", "0 -> 1|2", "0.0 -> 1.0|1")},
    "Rng.normal|u = self.uniform(stream, (2, *shape))  # owned: the steps below run in place on its two halves|2 -> 3|1":
        "a third row of uniforms is hashed and never read: rows 0 and 1 are elements 0..2n-1 either way",
    "Rng.integers|return torch.floor(self.uniform(stream, shape) * high).to(torch.int64).clamp_(max=high - 1)|- -> +|1":
        "the clamp never acts: uniform <= 1 - 2^-53, and floor((1 - 2^-53) * high) <= high - 1 for every high "
        "< 2^52 (the product rounds below high; checked for high up to 2e6 and around every power of two)",
    'ordinal_ranks|order = np.argsort(-logits, axis=-1, kind="stable")|drop unary -|2': _2D,
    'ordinal_ranks|np.put_along_axis(ranks, order, np.arange(1, logits.shape[-1] + 1)[None].repeat(len(logits), 0), '
    'axis=-1)|drop unary -|1': _2D + " (shape[-1] = shape[1])",
    'ordinal_ranks|np.put_along_axis(ranks, order, np.arange(1, logits.shape[-1] + 1)[None].repeat(len(logits), 0), '
    'axis=-1)|drop unary -|2': _2D,
    'sequence_t5d|order = np.argsort(-logits, axis=-1, kind="stable")|drop unary -|2': _2D,
    "_input_grad|return torch.autograd.grad(loss, x, retain_graph=False, create_graph=False)[0]|False -> True|1":
        "retain_graph keeps the graph's buffers alive after the call: memory, not the gradient's value",
    "_input_grad|return torch.autograd.grad(loss, x, retain_graph=False, create_graph=False)[0]|False -> True|2":
        "create_graph records the backward pass for higher derivatives; the returned gradient is the same "
        "(every caller takes .sign() and detaches)",
    "make_batches|pseudo_batch = cfg.optim.batch_size * cfg.ratio if cfg.pseudo is not None else 0|0 -> 1|1":
        "without pseudo-labels the sampler draws from 0 pseudo-labeled images: an empty stream whatever the batch",
    "run_epoch|t0, seen, loss_sum, skipped, lr = time.time(), 0, 0.0, 0, 0.0|0.0 -> 1.0|2":
        "the initial lr is never read: every epoch has at least one step (budget.steps_per_epoch >= 1), which sets "
        "lr before the history row takes it",
    "reproduces|got = float(s.fn(np.full((1, n), 1.0 / n))[0])|1 -> 2|1":
        "two identical rows of weights instead of one; only row 0 is read",
    "corruption|den: np.ndarray | Callable | None = None, clean: tuple[float, float] = (0.0, 0.0)) -> Sampler:|"
    "0.0 -> 1.0|2": "clean[1] (severities per corruption) is documentation only: fn counts cells per corruption",
    "mcnemar|p = binomtest(n01, n01 + n10, 0.5).pvalue if n01 + n10 else 1.0|+ -> -|1":
        "with n01 == n10 > 0 the mutant returns 1.0 where binomtest(k, 2k, 1/2) gives exactly 1.0 too",
    "seeds_difference|dof = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1)) if va + vb > 0 else 1.0|"
    "1.0 -> 2.0|1": "unreachable: va + vb = 0 means se = 0, which returns (flagged, no interval) before the dof",
    "seeds_difference|dof = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1)) if va + vb > 0 else 1.0|"
    "> -> >=|1": "unreachable: va + vb = 0 means se = 0, which returns (flagged, no interval) before the dof",
    "ShardWriter._flush|self.pending, self.n_pending = [], 0|0 -> 1|1":
        "n_pending only decides when a row group is flushed: one row earlier, same rows and statistics",
    "_boundary_rows|hit = passes_filter(conf, threshold) & (conf_bins(conf) == plan.bbin[hard]) & (plan.need[hard] > 0)|"
    "> -> >=|1":
        "need >= 1 wherever bbin is a real bin (b is the highest bin with cum >= m, so fewer than m rows lie above "
        "it); where need = 0, bbin = HIST_BINS matches no bin",
    "ShardWriter.add|self.n_pending += len(idx)|+ -> -|1":
        "n_pending only decides when a row group is flushed: one group at close, same rows and statistics",
    "ShardWriter.add|if self.n_pending >= ROW_GROUP:|>= -> >|1":
        "n_pending only decides when a row group is flushed: one row later, same rows and statistics",
    "_write_selections|table = pa.table({\"row\": pa.array(np.concatenate(rows_out) if rows_out else np.zeros(0, np.int64)),|"
    "0 -> 1|1": _EMPTY,
    "_write_selections|\"index\": pa.array(np.concatenate(idx_out) if idx_out else np.zeros(0, np.int64)),|0 -> 1|1": _EMPTY,
    "_write_selections|\"count\": pa.array((np.concatenate(cnt_out) if cnt_out else np.zeros(0)).astype(np.int32))})|"
    "0 -> 1|1": _EMPTY,
    "batch_loss|if cfg.pseudo_smoothing > 0:|> -> >=|1": "smoothing by 0 is y * 1 + 0 / C = y",
    "batch_loss|loss = loss + functional.cross_entropy(logits[:n_lab].float(), b.y.to(cfg.device, non_blocking=True),|"
    "True -> False|1":
        "non_blocking only lets a pinned host-to-device copy overlap; the stream orders it before use, same values",
    # issue 31
    'verdict|return "better" if (low > 0) == higher else "worse"|> -> >=|1': _SIGN,
    "claim_verdict|return HOLDS if (low > 0) == higher else REVERSED|> -> >=|1": _SIGN,
    "Report|n_tests: int = 0  # the family's size: every test with a verdict on the page (a study's claims are their "
    "own)|0 -> 1|1": "the default is never used: compare() builds every Report and passes the family's size",
    "c_sampler|clean=(clean if relative else 0.0, 0))|0 -> 1|1":
        "clean[1] (severities per corruption) is documentation only: stats.corruption reads clean[0]",
    'data_key|return json.dumps([str(d.get("fingerprint")), str(d.get("split")), used], sort_keys=True)|'
    'True -> False|1':
        "the key is only compared (stats.paired, stats.difference), and `used` is built in the fixed order of "
        "(folder, fingerprint, source) for every result: both sides serialise alike, sorted or not",
    # issue 31, bench / training (the reasons as the value tests' author found them)
    "ValSet|batch_size: int = 512|512 -> 513|1":
        "every caller passes its own batch size, and in eval mode an image's outcome does not depend on its batch",
    "ValSet|num_workers: int = 0|0 -> 1|1": "loader processes deliver the same images in the same order",
    "evaluate|amp: bool = False) -> dict:|False -> True|1":
        "GPU only: models.autocast is a no-op off CUDA, so no CPU test can see it (a device check could)",
    'evaluate|on = device if device.type == "cuda" and distributed.is_dist() else "cpu"  # where the process group '
    'reduces|and -> or|1': "multi-GPU only: it picks where the counts are summed (NCCL needs CUDA tensors), not what",
    'evaluate|on = device if device.type == "cuda" and distributed.is_dist() else "cpu"  # where the process group '
    'reduces|== -> !=|1': "multi-GPU only: it picks where the counts are summed (NCCL needs CUDA tensors), not what",
    'make_optimizer|fast = {"fused": True} if cuda else {"foreach": True}|True -> False|1':
        "fused picks a CUDA kernel (reached only on a GPU), not the arithmetic of the step",
    'make_optimizer|fast = {"fused": True} if cuda else {"foreach": True}|True -> False|2':
        "foreach picks the multi-tensor kernel, not the arithmetic of the step (test_optim's steps by hand agree)",
    '_blocked|if "GLOBAL" in ln or "unsupported" in ln.lower() or "not an allowed global" in ln.lower():|or -> and|1':
        "with torch 2.14 every refusal line that names a global holds both GLOBAL and 'unsupported'; a line with "
        "'unsupported' alone is the reason's first line, which the fallback picks anyway",
    "run|@register(FGSM, config=FGSMTask, order=4, validate=validate)|4 -> 5|1":
        "order 5 ties with the named attacks (attacks_by_name), and a tie keeps the modules' name order: the same "
        "suite order",
    "run.local|for x, y, i, _ in ctx.batches(src, part, batch_size=min(ctx.bs, 250)):|250 -> 251|1":
        "FGSM's step for an image depends only on that image's gradient, whatever its batch",
    'run|@register("imagenet_3dcc", config=ImageNet3DCCTask, order=13, validate=validate)|13 -> 14|1':
        "no task has order 14: the relative order of the tasks is unchanged",
    "|MIN_VAL_BATCH = 256|256 -> 257|1":
        "the held-out batch size only batches eval-mode outcomes, which do not depend on it",
    "_rounds|best_correct, best_state, since = None, None, 0|0 -> 1|1":
        "round 1 always improves on no best round and resets the counter to 0",
    "recipe|optim = dataclasses.asdict(_optim(1, 1, 1.0, 0))|1 -> 2|1": _POPPED,
    "recipe|optim = dataclasses.asdict(_optim(1, 1, 1.0, 0))|1 -> 2|2": _POPPED,
    "recipe|optim = dataclasses.asdict(_optim(1, 1, 1.0, 0))|1.0 -> 2.0|1": _POPPED,
    # issue 31, the report's tables and figures
    "severity_curves|return pd.concat(out, ignore_index=True) if out else pd.DataFrame()|True -> False|1":
        "figures.severity_by_family selects and groups the curve frame by column values and never reads its index",
    "task_of|return cell[0] if cell and cell[0] != CLEAN else None|0 -> 1|2":
        "the only single-set entry of task clean has condition clean too, and no other entry has either",
    'causes|if pub["set"] == shifts.IMAGENET_C and pub["metric"] != TOP1_ACC:  # a normalised -C number (mCE)|'
    "and -> or|1": "differs only for a published row with a normaliser that is not an ImageNet-C mean: none ships",
    "_test|rate = min(max(rate, 0.0), 1.0)|1.0 -> 2.0|1":
        "a rate above 1 needs a published top-1 beyond 100% after its rounding",
    'causes|if pub["crop_pct"] and crop and abs(float(crop) - pub["crop_pct"]) > 1e-3:|> -> >=|1':
        "crop_pct values of three decimals never differ by exactly 1e-3 in binary floats",
    "_measured|return shifts.Measured(float(h.value), float(h.ci_low), float(h.ci_high), int(h.n) if fmt.finite(h.n) "
    "else 0)|0 -> 1|1": "the count feeds only the top-1 binomial test and the image-count cause; the one shipped row "
                        "without a count (ImageNet-C mCE) uses neither",
    # the registry's lazy import: reachable only in a fresh interpreter (the runner mutates a process that has
    # imported every task, and a subprocess would not see the mutant)
    "|_LOADED = False|False -> True|1": "only a fresh interpreter's first task_kinds() reads it",
    "task_kinds|if not _LOADED:|drop not|1": "only a fresh interpreter's first task_kinds() reads it",
    "task_kinds|_LOADED = True|True -> False|1": "importing the task modules again registers nothing new",
    # issue 31, the harness and its inputs
    "reachable.probe|ok.append(True)|True -> False|1": "the caller reads bool(ok): a list holding False is still true",
    "Choice|@dataclass(frozen=True)|True -> False|1": _UNMUTATED_RECORD,
    "ModelInfo|@dataclass(frozen=True)|True -> False|1": _UNMUTATED_RECORD,
    "Cell|@dataclass(frozen=True)|True -> False|1": _UNMUTATED_RECORD,
    "score|schema.write_results(out, df, pd.concat(per, ignore_index=True) if per else pd.DataFrame(), meta)|"
    "True -> False|1": "per_image.parquet is written with index=False: the frame's index never reaches the file",
    'from_module|inputs = "normalised inside by the given mean/std" if mean is not None else "model takes [0, 1] '
    'images"|is not -> is|1': "the string is never read nor written to meta.json",
    'corruption_tree_task|for cell in tqdm(cells, desc=f"{ctx.em.label} {what}", leave=False, mininterval=2.0):|'
    "False -> True|1": _PROGRESS_BAR,
    'corruption_tree_task|for cell in tqdm(cells, desc=f"{ctx.em.label} {what}", leave=False, mininterval=2.0):|'
    "2.0 -> 3.0|1": _PROGRESS_BAR,
    "corruption_tree_task|n = max((len(p) for p in per), default=0)|0 -> 1|1":
        "with no cells tree_means returns nothing, so n is never used",
    # issue 33's temperature fit
    "fit_temperature|def fit_temperature(logits: np.ndarray, labels: np.ndarray, steps: int = 60) -> float:|60 -> 61|1":
        "60 halvings of a log-range of 9.2 already reach float64's resolution: a 61st moves nothing",
    "fit_temperature|if _nll_slope(z, labels, np.exp(lo)) >= 0:|>= -> >|1":
        "a slope of exactly 0 at the bound: the bisection then ends on the bound itself, the same T",
    "fit_temperature|if _nll_slope(z, labels, np.exp(mid)) < 0:|< -> <=|1":
        "a slope of exactly 0 at a midpoint is the minimum itself: either half keeps it",
    "_digits|return 1|1 -> 2|1":
        "the fallback runs only for a measure name the schema does not know, and every row adjust() passes in comes "
        "from measures() or the schema's own names",
    "measures|held = measures_in(pd.concat([r.rows for r in evals], ignore_index=True))|True -> False|1":
        "measures_in reads the frame through boolean masks of its own columns (same index object) and values, never "
        "by label: a repeated index selects the same rows",
    # bench.perturbation_sets
    "_zoom|h = img.shape[0]|0 -> 1|1":
        "_zoom's one caller is sequence()'s snow layer of (h, w), and sequence() refuses h != w: shape[1] == shape[0]",
    "_zoom|t = (z.shape[0] - h) // 2|0 -> 1|1":
        "the layer is square (sequence() refuses h != w) and cv2.resize scales both sides by the same factor",
    **{f"tilt_matrix|t = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, f], [0, 0, 0, 1]])|{m}":
       "p2's fourth column is all zeros, so p2 @ t never reads t's last row (exact: 0 times a finite entry is 0)"
       for m in ("0 -> 1|9", "0 -> 1|10", "0 -> 1|11", "1 -> 2|4")},
    "sequence|frames = [np.uint8(np.clip(_motion(img, radius * s, sigma * s, (i - (n - 1)) * step), 0, 255))|"
    "255 -> 256|1":
        "_motion_blur sums shifted copies of a uint8 image with kernel weights >= 0 summing to at most 1, so no value "
        "reaches 256; np.uint8 truncates anything in [255, 256) to 255 either way",
    # training.records
    "final_quarter_gain|epochs = max((int(h[\"epoch\"]) for h in history), default=0)|0 -> 1|1":
        "only an empty history takes the default, and quarter_mark is None below 4 epochs: {} for 0 and 1 alike",
    "write_history|df = pd.concat([old, new], ignore_index=True).sort_values([\"iteration\", \"epoch\"])|True -> False|1":
        "the index is never written (to_csv index=False) and sort_values orders by the two columns (a stable "
        "lexsort by position), never by the index: the same rows in the same order",
    # study.runner
    "_complete|return False|False -> True|2":
        "reached only if summary.json fails to parse here after _finished parsed the same file a moment before (the "
        "same KeyError / TypeError / NsbenchError makes _finished False first): a file changing between two reads",
    "_report|baseline = next((lab for lab in labels if lab.endswith(\"-iter0\")), labels[0])|0 -> 1|1":
        "every study has a run that reports iteration 0 (the shared teacher's run, or a variant that trains its own "
        "teacher, whose checkpoints start at 0), so the fallback labels[0] is never taken",
    "run_study|\"threads_per_job\": threads if jobs == 1 else run_slots[0].threads}|0 -> 1|1":
        "jobs.slots gives every slot the same thread count (--threads, or the same share of the cores), and with "
        "one job the other branch is taken: slot 1's threads are slot 0's",
    # study.jobs
    "run_parallel|if not p.is_alive() and p.exitcode is not None:|and -> or|1":
        "for a started multiprocessing Process, is_alive() polls the exit code and is False exactly when exitcode is "
        "not None: the two conditions are one",
    "slots|out.append(Slot(i, dev, group, threads or (len(group) if len(cores) >= jobs else 1)))|>= -> >|1":
        "they differ only when jobs == cores, where each group is one core (cores // jobs = 1): 1 thread either way",
    "run_parallel|msg = results.get(timeout=1.0)|1.0 -> 2.0|1":
        "a polling interval: how soon the loop looks at its processes again, not what it does with them",
    "run_parallel|_finish(results.get(timeout=2.0), running, done, out, failed)|2.0 -> 3.0|1":
        "how long to wait for the report of a process that has exited: it is on the queue before the exit "
        "(the child puts it, then returns), so any wait finds it",
    # bench.onthefly.perturb
    "cv2_zoom|lo, hi = p0.clamp(0, ch - 1), (p0 + 1).clamp(0, ch - 1)|- -> +|1":
        "p0 <= floor((out - 0.5) / factor - 0.5) <= ch - 1 since out = round(ch * factor) <= ch * factor + 0.5: lo's "
        "upper clamp never binds (checked for every size 1-1024 at factors 1.01-3.99 in steps of 0.01, and 2 and 3)",
    "cv2_zoom|lo, hi = p0.clamp(0, ch - 1), (p0 + 1).clamp(0, ch - 1)|0 -> 1|2":
        "hi differs only where p0 < 0, and there frac is set to 0, so crop[:, hi] is weighted by 0 (the layer is "
        "finite normal draws)",
    "sequences|(i - (k - 1)) * step).clamp(0, 255).to(torch.uint8) for i in range(k)]|255 -> 256|1":
        "motion_blur_with_angle sums shifted copies of a uint8 image with kernel weights >= 0 summing to at most 1: "
        "no value reaches 256, and .to(torch.uint8) truncates anything in [255, 256) to 255 either way",
}


# Mutants only multi-process tests can see: the runner mutates the module in its own process, and torch.distributed
# workers start fresh interpreters. Each was applied to the file by hand and the named test failed on it.
_DDP = "tests/test_distributed.py::test_one_ddp_step_matches_one_process_on_the_combined_batch"
KILLED_BY_HAND: dict[str, str] = {
    'run_epoch|"train_loss": loss_sum / max(seen, 1), "images": seen * t.world,|* -> /|1': _DDP,
}


# ------------------------------------------------------------------------------------------------ mutations

BIN = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
       ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult}
CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
       ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
SYM = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**",
       ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is",
       ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in", ast.And: "and", ast.Or: "or"}


@dataclass
class Mutant:
    id: str
    line: int
    desc: str
    path: tuple  # (node index in ast.walk order, kind, sub-index)
    span: tuple = ()  # lines whose execution means the mutated node may run
    at_import: bool = False  # runs at import (module or class body): every test depends on it
    status: str = ""
    tests: list = field(default_factory=list)


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """Nodes never mutated: docstrings, annotations, f-strings (messages) and their children."""
    skip = set()

    def all_of(node):
        for n in ast.walk(node):
            skip.add(id(n))

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                all_of(body[0])
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                if a.annotation is not None:
                    all_of(a.annotation)
            if node.returns is not None:
                all_of(node.returns)
        if isinstance(node, ast.AnnAssign):
            all_of(node.annotation)
        if isinstance(node, ast.JoinedStr):
            all_of(node)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("info", "warning", "debug", "error"):
            all_of(node)  # log messages
    return skip


def _statements(tree: ast.AST) -> dict[int, int]:
    """id(node) -> first line of the innermost statement holding it (multi-line expressions trace unevenly)."""
    out = {}

    def visit(node, line):
        for child in ast.iter_child_nodes(node):
            here = child.lineno if isinstance(child, ast.stmt) else line
            out[id(child)] = here
            visit(child, here)

    visit(tree, 0)
    return out


def _in_function_bodies(tree: ast.AST) -> set[int]:
    """ids of nodes that run when a function is called; every other node (module and class bodies, signatures'
    defaults) runs at import, before any test is traced."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for stmt in (node.body if isinstance(node.body, list) else [node.body]):
                out |= {id(n) for n in ast.walk(stmt)}
    return out


def _scopes(tree: ast.AST) -> dict[int, str]:
    """id(node) -> qualified name of the function or class body it is in."""
    out = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                q = f"{prefix}.{child.name}" if prefix else child.name
                for n in ast.walk(child):
                    out[id(n)] = q
                visit(child, q)
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def _key_strings(tree: ast.AST) -> set[int]:
    """ids of the string constants that name data: dict keys, subscripts (`d["k"]`), the key of .get / .pop /
    .setdefault, and comparison operands (`task == "clean"`)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            cands = node.keys
        elif isinstance(node, ast.Subscript):
            cands = [node.slice]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("get", "pop", "setdefault"):
            cands = node.args[:1]
        elif isinstance(node, ast.Compare):
            cands = [node.left, *node.comparators]
        else:
            continue
        out |= {id(c) for c in cands if isinstance(c, ast.Constant) and isinstance(c.value, str)}
    return out


def mutations(tree: ast.AST, keys: bool = False):
    """Yield (node index, node, kind, sub, description) for every mutation point (with `keys`, also the strings
    that name data, renamed)."""
    named = _key_strings(tree) if keys else set()
    for i, node in enumerate(ast.walk(tree)):
        if id(node) in named:
            yield i, node, "key", 0, f"{node.value!r} -> {node.value + '_X'!r}"
            continue
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in BIN:
            yield i, node, "op", 0, f"{SYM[type(node.op)]} -> {SYM[BIN[type(node.op)]]}"
        elif isinstance(node, ast.Compare):
            for k, op in enumerate(node.ops):
                if type(op) in CMP:
                    yield i, node, "cmp", k, f"{SYM[type(op)]} -> {SYM[CMP[type(op)]]}"
        elif isinstance(node, ast.BoolOp):
            yield i, node, "bool", 0, f"{SYM[type(node.op)]} -> {'or' if isinstance(node.op, ast.And) else 'and'}"
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            yield i, node, "unary", 0, f"drop {'not' if isinstance(node.op, ast.Not) else 'unary -'}"
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
            if isinstance(node.value, bool):
                yield i, node, "const", 0, f"{node.value} -> {not node.value}"
            else:
                yield i, node, "const", 0, f"{node.value!r} -> {node.value + 1!r}"


def apply(tree: ast.AST, index: int, kind: str, sub: int) -> ast.AST:
    """Mutate node `index` (ast.walk order) of `tree` in place (the tree is a fresh parse)."""
    for i, node in enumerate(ast.walk(tree)):
        if i != index:
            continue
        if kind == "op":
            node.op = BIN[type(node.op)]()
        elif kind == "cmp":
            node.ops[sub] = CMP[type(node.ops[sub])]()
        elif kind == "bool":
            node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        elif kind == "unary":  # replace the operand's parent expression by the operand: via a marker
            node.op = ast.UAdd() if isinstance(node.op, ast.USub) else _Identity()
        elif kind == "const":
            node.value = (not node.value) if isinstance(node.value, bool) else node.value + 1
        elif kind == "key":
            node.value = node.value + "_X"
        return tree
    raise IndexError(index)


class _Identity(ast.UAdd):
    """`not x` -> `+(not not x)` is awkward; rewrite `not x` as `bool(x)` instead (see _fix_identity)."""


class _FixIdentity(ast.NodeTransformer):
    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, _Identity):
            return ast.copy_location(ast.Call(ast.Name("bool", ast.Load()), [node.operand], []), node)
        return node


def enumerate_mutants(path: Path, target: Target, src: str | None = None) -> list[Mutant]:
    src = path.read_text() if src is None else src
    others = {m.path for t in target.minus for m in enumerate_mutants(path, TARGETS[t], src)}  # theirs, not this one's
    lines = src.splitlines()
    tree = ast.parse(src)
    skip, scope, stmt = _skipped_nodes(tree), _scopes(tree), _statements(tree)
    called = _in_function_bodies(tree)
    seen: dict[str, int] = {}
    out = []
    for i, node, kind, sub, desc in mutations(tree, target.keys):
        if id(node) in skip:
            continue
        q = scope.get(id(node), "")
        if target.functions and not any(q == f or q.startswith(f + ".") for f in target.functions):
            continue
        text = lines[node.lineno - 1].strip()
        if target.lines and not re.search(target.lines, text):
            continue
        base = f"{q}|{text}|{desc}"
        seen[base] = seen.get(base, 0) + 1
        span = (stmt.get(id(node), node.lineno), *range(node.lineno, node.end_lineno + 1))
        if (i, kind, sub) in others:
            continue
        out.append(Mutant(f"{base}|{seen[base]}", node.lineno, desc, (i, kind, sub), span, id(node) not in called))
    return out


# ------------------------------------------------------------------------------------------------ running

def _collect(test_args: list[str]) -> None:
    import pytest

    rc = pytest.main(["--collect-only", "-qq", "-p", "no:cacheprovider", *test_args])
    if rc != 0:
        sys.exit(f"collection failed for {test_args}")


class _Cover:
    """pytest plugin: per test id, the lines of `path` it executes."""

    def __init__(self, path: str):
        self.path, self.cur, self.lines, self.times, self.failed = path, None, {}, {}, []

    def _trace(self, frame, event, arg):
        if frame.f_code.co_filename != self.path:
            return None
        if event in ("line", "call"):
            self.lines.setdefault(self.cur, set()).add(frame.f_lineno)
        return self._trace

    def pytest_runtest_protocol(self, item, nextitem):
        import threading

        self.cur = item.nodeid
        self.t0 = time.perf_counter()
        sys.settrace(self._trace)
        threading.settrace(self._trace)

    def pytest_runtest_logreport(self, report):
        if report.when == "teardown":
            sys.settrace(None)
            self.times[report.nodeid] = time.perf_counter() - self.t0
        if report.failed:
            self.failed.append(report.nodeid)


def _fork(fn, timeout: float | None = None) -> tuple[int, float]:
    """Run fn() in a forked child; its return value is the exit code. (-1 on timeout)."""
    t0 = time.perf_counter()
    # the child's garbage collector would otherwise walk (and so copy) every object the parent holds, torch's and
    # the tests' included: 0.5 s of each mutant's 0.6 s before this (mutmut 3 freezes too)
    gc.freeze()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = fn()
        except BaseException:  # noqa: BLE001 - any error in the child is a failure of the tests
            code = 1
        finally:
            os._exit(code)
    deadline = None if timeout is None else t0 + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), time.perf_counter() - t0
        if deadline and time.perf_counter() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -1, time.perf_counter() - t0
        time.sleep(0.01)


def _quiet():
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)


IMPORT = "<import>"  # coverage's key for the lines the module's own execution reaches (module-level calls)


def coverage(module_name: str, path: Path, test_args: list[str], src: str) -> tuple[dict, dict, list]:
    """Per test id, the lines of `path` it executes; under IMPORT, the lines the module's execution itself reaches
    (a function called at module level, as shifts' TREES or suite's config class are built): re-executed here under
    the trace as a mutant is, so a mutant there runs against every test. numba.njit is an identity here only: a
    mutant of a compiled function is compiled as the module is."""
    out = Path(tempfile.mkstemp(suffix=".json")[1])

    def child():
        import pytest
        import torch

        torch.set_num_threads(1)
        _quiet()
        try:  # functions compiled from here on (calibrated's copy_shift, compiled at its first call) stay Python,
            import numba  # so the trace sees their lines; what numba compiled already (imagecorruptions') stays

            numba.njit = lambda *a, **k: a[0] if a and callable(a[0]) else (lambda f: f)
        except ImportError:
            pass
        cov = _Cover(str(path))
        cov.cur = IMPORT
        sys.settrace(cov._trace)
        _reexecute(module_name, path, ast.parse(src))
        sys.settrace(None)
        pytest.main(["-q", "-p", "no:cacheprovider", *test_args], plugins=[cov])
        out.write_text(json.dumps({"lines": {k: sorted(v) for k, v in cov.lines.items() if k},
                                   "times": cov.times, "failed": cov.failed}))
        return 0

    _fork(child)
    data = json.loads(out.read_text())
    out.unlink()
    return {k: set(v) for k, v in data["lines"].items()}, data["times"], data["failed"]


TIMED_OUT = 99  # a child's exit code when a test ran past its limit (_Limits)


class _Limits:
    """pytest plugin: each test's call may take 5x its clean time + 30 s (pytest-timeout, the test extra's), so a
    mutant that loops forever ends in its first test instead of at the budget of all of them."""

    def __init__(self, times: dict):
        self.times, self.hit = times, False

    def pytest_collection_modifyitems(self, items):
        import pytest

        for it in items:
            it.add_marker(pytest.mark.timeout(5 * self.times.get(it.nodeid, 1.0) + 30, func_only=True))

    def pytest_runtest_logreport(self, report):
        if report.failed and "Timeout" in report.longreprtext:
            self.hit = True


def run_mutant(module_name: str, path: Path, m: Mutant | None, tests: list[str], timeout: float,
               times: dict | None = None, src: str | None = None) -> tuple[int, float]:
    """Run `tests` against the module re-executed with mutant m (None: unmutated, the runner's own check); each
    test limited to 5x its clean time (`times`) + 30 s, all of them to `timeout`. `src`: the module's source as the
    run read it once (an edit to the file during the run must not move the mutants' node indices)."""
    def child():
        import pytest
        import torch

        torch.set_num_threads(1)
        _quiet()
        tree = ast.parse(src if src is not None else path.read_text())
        _reexecute(module_name, path, apply(tree, *m.path) if m is not None else tree)
        limits = _Limits(times or {})
        rc = pytest.main(["-x", "-q", "-p", "no:cacheprovider", *tests], plugins=[limits])
        return TIMED_OUT if limits.hit else rc

    return _fork(child, timeout)


def _reexecute(module_name: str, path: Path, tree: ast.AST) -> None:
    """Execute `tree` (the module, mutated or not) in the imported module's namespace, and make what other modules
    already hold of it (registries, imported functions, instances of its classes) see the new definitions."""
    mod = sys.modules[module_name]
    old = dict(vars(mod))
    registry = sys.modules.get("nsbench.bench.registry")
    for k, v in list(getattr(registry, "_TASKS", {}).items()):  # the re-executed @register must not clash
        if getattr(v.run, "__module__", None) == module_name:
            del registry._TASKS[k]
    tree = _FixIdentity().visit(tree)
    ast.fix_missing_locations(tree)
    exec(compile(tree, str(path), "exec"), vars(mod))
    for k, v in old.items():  # a registry the re-execution emptied keeps what other modules put in it
        if isinstance(v, dict) and v and isinstance(vars(mod).get(k), dict) and not vars(mod)[k]:
            vars(mod)[k].update(v)
    for k, v in old.items():  # instances made before the mutation (registries, module constants) see it too
        _transplant(v, vars(mod).get(k), module_name)
    swap = {id(v): vars(mod)[k] for k, v in old.items()
            if k in vars(mod) and vars(mod)[k] is not v and callable(v)}
    for other in list(sys.modules.values()):
        d = getattr(other, "__dict__", None)
        if other is mod or not isinstance(d, dict):
            continue
        for k, v in list(d.items()):
            if id(v) in swap:
                d[k] = swap[id(v)]


def _transplant(old, new, module_name: str) -> None:
    """Copy a re-executed class's attributes (methods, properties, dataclass defaults and __init__) onto the class
    it replaces, so objects built before the mutation run the mutated methods: a Measure in a list another module
    imported, a task's settings class in the registry. Skipped: classes of other modules or metaclasses, slots, and
    functions that use zero-argument super() (their __class__ cell is the new class)."""
    if not (isinstance(old, type) and isinstance(new, type) and old is not new and type(old) is type
            and old.__module__ == module_name and old.__qualname__ == new.__qualname__):
        return
    import types

    for k, v in vars(new).items():
        if k in ("__dict__", "__weakref__", "__module__", "__qualname__", "__doc__", "__slots__") or \
                isinstance(v, (types.MemberDescriptorType, types.GetSetDescriptorType)):
            continue
        fns = [v.fget, v.fset] if isinstance(v, property) else [getattr(v, "__func__", v)]
        if any("__class__" in getattr(getattr(f, "__code__", None), "co_freevars", ()) for f in fns if f):
            continue
        try:
            setattr(old, k, v)
        except (AttributeError, TypeError):
            pass


def test_args(name: str, base_only: bool) -> list[str]:
    """The tests of a target: the before / after sets of the targets of issue 25; for the others, the listed files
    and the file named after the module's subject, where they exist."""
    if name in BASE_TESTS:
        return BASE_TESTS[name] + ([] if base_only else NEW_TESTS[name])
    if base_only:
        sys.exit(f"{name}: no test set from before issue 25 (--baseline-tests is for {', '.join(BASE_TESTS)})")
    subject = TARGETS[name].module.rsplit(".", 1)[-1]
    found = [str(f.relative_to(ROOT)) for f in sorted(ROOT.glob(f"tests/**/test_{subject}.py"))]
    return [t for t in dict.fromkeys([*found, *TARGETS[name].tests]) if (ROOT / t.split("::")[0]).exists()]


def resolve(names: list[str]) -> list[str]:
    """Target names from names, module names (nsbench.report.family) or files (nsbench/report/family.py): a module
    stands for every target in it."""
    out = []
    for n in names:
        if n in TARGETS:
            out.append(n)
            continue
        mod = n.removesuffix(".py").replace("/", ".")
        hits = [k for k, t in TARGETS.items() if t.module == mod]
        if not hits:
            sys.exit(f"unknown target or module {n}; valid: {', '.join(TARGETS)}")
        out += hits
    return list(dict.fromkeys(out))


def run_target(name: str, base_only: bool, verbose: bool, shard: tuple[int, int] = (0, 1),
               only: list[str] | None = None, tests: list[str] | None = None) -> dict:
    """Run every mutant of target `name` (or the shard's share; with `only`, the mutants whose id contains one of
    the strings) against the tests that execute its line (drawn from `tests` when given, else the target's)."""
    import importlib

    wall = time.perf_counter()
    target = TARGETS[name]
    tests = tests or test_args(name, base_only)
    mod = importlib.import_module(target.module)
    path = Path(mod.__file__).resolve()
    _collect(tests)
    import torch

    torch.set_num_threads(1)
    src = path.read_text()
    lines, times, failed = coverage(target.module, path, tests, src)
    at_import = lines.pop(IMPORT, set())
    if failed:
        print(f"{name}: {len(failed)} test(s) fail before any mutation and are left out: {failed}")
    # the runner itself must be invisible: the unmutated code re-executed passes every covering test
    covering = sorted(t for t in lines if t not in failed)
    rc, _ = run_mutant(target.module, path, None, covering, 10 * sum(times.values()) + 60, times, src)
    if rc != 0:
        sys.exit(f"{name}: the tests fail with the unmutated module re-executed (exit {rc}); fix the runner first")
    mutants = enumerate_mutants(path, target, src)[shard[0]::shard[1]]
    if only:
        mutants = [m for m in mutants if any(o in m.id for o in only)]
        if not mutants:
            sys.exit(f"{name}: no mutant id contains any of {only}")
    t0 = time.perf_counter()
    for m in mutants:
        if m.id in EQUIVALENT:
            m.status = "equivalent"
            continue
        # fastest first: with -x the first failing test ends the run
        # at import (module or class body, or a function the module calls as it runs): every test that ran, even
        # one no traced line reached
        everywhere = m.at_import or bool(at_import.intersection(m.span))
        pool = times if everywhere else lines
        m.tests = sorted((t for t in pool if (everywhere or lines[t].intersection(m.span)) and t not in failed),
                         key=lambda t: (times.get(t, 1.0), t))
        if not m.tests:
            m.status = "not covered"
            continue
        budget = 5 * sum(times.get(t, 1.0) for t in m.tests) + 10
        rc, dt = run_mutant(target.module, path, m, m.tests, budget, times, src)
        m.status = "killed" if rc != 0 else "survived"
        if rc in (-1, TIMED_OUT):
            m.status = "killed (timeout)"
        if verbose:
            print(f"  {m.status:16s} {dt:5.1f}s line {m.line}: {m.desc}  [{m.id}]", flush=True)
    res = {"target": name, "module": target.module, "functions": list(target.functions), "tests": tests,
           "shard": list(shard), "seconds": round(time.perf_counter() - t0), "wall": round(time.perf_counter() - wall),
           "coverage_tests": len(times),
           "mutants": [{"id": m.id, "line": m.line, "desc": m.desc, "status": m.status, "tests": m.tests}
                       for m in mutants]}
    summarise([res])
    return res


def summarise(results: list[dict], markdown: bool = False) -> None:
    """Print killed / total per target (shards of one target merged), equivalents named, survivors listed; with
    `markdown`, then one table row per target (as tests/README.md lists the scores)."""
    by: dict[str, dict] = {}
    for r in results:
        for m in r["mutants"]:  # equivalents named after a run apply to its saved results too
            m["status"] = "equivalent" if m["id"] in EQUIVALENT else m["status"]
            # by hand with the current tests only (the "before" suite had no such check)
            if m["id"] in KILLED_BY_HAND and m["status"] in ("survived", "not covered") and \
                    r["tests"] != BASE_TESTS.get(r["target"]):
                m["status"] = f"killed (by hand: {KILLED_BY_HAND[m['id']]})"
        key = f"{r['target']}{' (tests before issue 25)' if r['tests'] == BASE_TESTS.get(r['target']) else ''}"
        agg = by.setdefault(key, {**r, "mutants": [], "seconds": 0, "wall": 0})
        agg["mutants"] += r["mutants"]
        agg["seconds"] += r.get("seconds", 0)
        agg["wall"] += r.get("wall", r.get("seconds", 0))
    for key, r in by.items():
        ms = r["mutants"]
        scored = [m for m in ms if m["status"] != "equivalent"]
        killed = sum(m["status"].startswith("killed") for m in scored)
        fns = f" [{', '.join(r['functions'])}]" if r.get("functions") else ""
        print(f"\n{key}: {r['module']}{fns}: {killed}/{len(scored)} killed ({100 * killed / max(1, len(scored)):.1f}%), "
              f"{len(ms) - len(scored)} equivalent, {r['seconds']}s of mutants, {r['wall']}s in all")
        for m in ms:
            if m["status"] == "equivalent":
                print(f"  equivalent  line {m['line']}: {m['desc']}  [{m['id']}] - {EQUIVALENT.get(m['id'], '')}")
        for m in ms:
            if m["status"].startswith("killed (by hand"):
                print(f"  {m['status']}  line {m['line']}: {m['desc']}  [{m['id']}]")
        for m in ms:
            if m["status"] in ("survived", "not covered"):
                print(f"  {m['status']:11s} line {m['line']}: {m['desc']}  [{m['id']}]")
    if markdown:
        print("\n| target | module | mutants | equivalent | killed | survived | not covered | score | wall |")
        print("|---|---|---|---|---|---|---|---|---|")
        for key, r in by.items():
            ms = r["mutants"]
            n = {s: sum(m["status"] == s for m in ms) for s in ("equivalent", "survived", "not covered")}
            killed = sum(m["status"].startswith("killed") for m in ms)
            print(f"| `{key}` | {r['module'].removeprefix('nsbench.').replace('.', '/')}.py | {len(ms)} | "
                  f"{n['equivalent']} | {killed} | {n['survived']} | {n['not covered']} | {killed} / "
                  f"{len(ms) - n['equivalent']} | {r['wall'] // 60}m{r['wall'] % 60:02d}s |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("targets", nargs="*", help=f"any of {', '.join(TARGETS)}; or a module (nsbench/calibration.py, "
                    "nsbench.calibration): its targets")
    ap.add_argument("--list", action="store_true", help="list the targets and their mutant counts")
    ap.add_argument("--baseline-tests", action="store_true", help="only the tests that predate the value tests")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per mutant as it runs")
    ap.add_argument("--shard", default="0/1", help="K/N: only every N-th mutant from the K-th (runs of ~5 minutes)")
    ap.add_argument("--only", action="append", metavar="TEXT",
                    help="only the mutants whose id contains TEXT (repeatable): check that a new test kills them")
    ap.add_argument("--tests", nargs="+", metavar="TEST", help="draw the covering tests from these files / ids only")
    ap.add_argument("--merge", nargs="+", type=Path, help="print the combined score of --json files and exit")
    ap.add_argument("--markdown", action="store_true", help="with --merge: also one table row per target")
    args = ap.parse_args(argv)
    if args.merge:
        summarise([r for f in args.merge for r in json.loads(f.read_text())], args.markdown)
        return 0
    k, n = (int(v) for v in args.shard.split("/"))
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT / "tests"))
    if args.list or not args.targets:
        import importlib.util

        total = 0
        for n, t in TARGETS.items():
            path = Path(importlib.util.find_spec(t.module).origin)
            count = len(enumerate_mutants(path, t))
            total += count
            tests = ", ".join(a.removeprefix("tests/") for a in test_args(n, False)) if n not in BASE_TESTS else \
                "the value tests of issue 25 (BASE_TESTS, NEW_TESTS)"
            print(f"{n:30s} {count:4d} mutants  {tests}")
        print(f"{'all':30s} {total:4d} mutants")
        return 0
    results = [run_target(t, args.baseline_tests, args.verbose, (k, n), args.only, args.tests)
               for t in resolve(args.targets)]
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
