import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceatlas.eval.metrics import best_threshold, kfold_accuracy, verification_report
from faceatlas.models.cards import CalibratedThreshold, DLIB_RESNET_CARD
from faceatlas.verification import FARCalibrator, cosine_similarity, decide


def test_cosine_similarity_basics():
    assert cosine_similarity(np.array([1.0, 0]), np.array([2.0, 0])) == pytest.approx(1.0)
    assert cosine_similarity(np.array([1.0, 0]), np.array([0, 3.0])) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="differ in size"):
        cosine_similarity(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="all zeros"):
        cosine_similarity(np.zeros(3), np.ones(3))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=4, max_size=60), st.randoms())
def test_best_threshold_is_optimal(scores, rnd):
    scores = np.array(scores)
    same = np.array([rnd.random() < 0.5 for _ in scores])
    t = best_threshold(scores, same)
    acc = ((scores >= t) == same).mean()
    for candidate in np.concatenate([scores, [scores.min() - 1, scores.max() + 1]]):
        assert acc >= ((scores >= candidate) == same).mean() - 1e-12


def test_kfold_accuracy_perfectly_separable():
    rng = np.random.default_rng(0)
    same = np.arange(200) % 2 == 0
    scores = np.where(same, rng.uniform(0.6, 1, 200), rng.uniform(-1, 0.4, 200))
    accs, _ = kfold_accuracy(scores, same, np.arange(200) % 10)
    assert accs.tolist() == [1.0] * 10


def test_report_refuses_far_it_cannot_measure():
    rng = np.random.default_rng(1)
    same = np.arange(1000) % 2 == 0
    scores = np.where(same, rng.normal(0.8, 0.1, 1000), rng.normal(0.2, 0.1, 1000))
    report = verification_report(scores, same, np.arange(1000) % 10, np.zeros(1000, bool))
    assert report.tar_at_far["0.01"] is not None
    assert report.tar_at_far["0.001"] is None and report.tar_at_far["0.0001"] is None
    assert any("0.001" in n for n in report.notes)
    assert 0.99 < report.auc <= 1.0 and report.eer < 0.01


def test_far_calibrator_reaches_the_target():
    rng = np.random.default_rng(2)
    impostor = rng.normal(0.0, 0.15, 100_000)
    genuine = rng.normal(0.8, 0.1, 1000)
    scores = np.concatenate([impostor, genuine])
    same = np.concatenate([np.zeros(100_000, bool), np.ones(1000, bool)])
    cal = FARCalibrator(targets=(1e-2, 1e-3, 1e-4)).fit(scores, same)
    for target, threshold, far in zip(cal.targets, cal.thresholds_, cal.far_):
        assert far <= target
        assert (impostor >= threshold).mean() == far
        # the threshold is the lowest with that guarantee: one notch lower breaks it or ties
        assert (impostor >= np.nextafter(threshold, -np.inf) - 1e-9).mean() >= far
    assert list(cal.thresholds_) == sorted(cal.thresholds_)
    with pytest.raises(ValueError, match="impostor pairs"):
        FARCalibrator(targets=(1e-6,)).fit(scores, same)


def test_card_threshold_interpolates_and_refuses_extrapolation():
    import dataclasses

    card = dataclasses.replace(
        DLIB_RESNET_CARD,
        thresholds=(CalibratedThreshold(1e-2, 0.80), CalibratedThreshold(1e-4, 0.90)),
    )
    assert card.threshold_for(1e-2) == pytest.approx(0.80)
    assert card.threshold_for(1e-3) == pytest.approx(0.85)
    with pytest.raises(ValueError, match="outside the range"):
        card.threshold_for(1e-6)
    match = decide(0.86, card, far=1e-3)
    assert match.is_match and match.far == 1e-3 and bool(match)
    assert not decide(0.5, card, threshold=0.6).is_match
    with pytest.raises(ValueError, match="not both"):
        decide(0.5, card, far=1e-3, threshold=0.6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 8), st.booleans()), min_size=2, max_size=60))
def test_roc_matches_scikit_learn(rows):
    from sklearn.metrics import roc_auc_score
    from sklearn.metrics import roc_curve as sk_roc_curve

    from faceatlas.eval.metrics import roc_auc, roc_curve, tar_at_far

    scores = np.array([r[0] / 8 for r in rows])  # few distinct values: many ties
    same = np.array([r[1] for r in rows])
    if same.all() or not same.any():
        return
    fpr, tpr, _ = roc_curve(same, scores)
    sk_fpr, sk_tpr, _ = sk_roc_curve(same, scores, drop_intermediate=False)
    assert np.allclose(fpr, sk_fpr) and np.allclose(tpr, sk_tpr)
    assert roc_auc(same, scores) == pytest.approx(roc_auc_score(same, scores))
    for far in (0.0, 0.1, 0.5):
        assert tar_at_far(fpr, tpr, far) == pytest.approx(tar_at_far(sk_fpr, sk_tpr, far))
