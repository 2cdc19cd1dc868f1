"""Distillation losses against values computed by hand from their formulas."""

import math

import pytest
import torch

from retrieval_lab.objectives import (DualTeacher, EmbeddingDistillation, InfoNCE, ListwiseCE, ListwiseKL, LossInputs,
                                      MarginMSE, MissingInput, PointwiseBCE, WeightedSum)


def test_margin_mse_matches_the_formula():
    student = torch.tensor([[3.0, 1.0, 0.0], [2.0, 2.5, 1.0]])
    teacher = torch.tensor([[10.0, 9.0, 5.0], [4.0, 1.0, 3.0]])
    # margins: student [[2, 3], [-0.5, 1]], teacher [[1, 5], [3, 1]]; squared errors 1, 4, 12.25, 0
    assert MarginMSE()(student, teacher).item() == pytest.approx((1 + 4 + 12.25 + 0) / 4)
    assert MarginMSE()(teacher + 7, teacher).item() == 0  # a shifted scale teaches nothing new
    with pytest.raises(ValueError, match="1 \\+ k >= 2"):
        MarginMSE()(student[:, :1], teacher[:, :1])


def test_margin_mse_scales_the_students_scores():
    cosine = torch.tensor([[0.9, 0.5], [0.2, 0.4]])
    logits = torch.tensor([[6.0, -2.0], [1.0, 3.0]])
    # scaled student margins 20 * [0.4, -0.2] = [8, -4], teacher margins [8, -2]: errors 0 and 4
    assert MarginMSE(student_scale=20)(cosine, logits).item() == pytest.approx((0 + 4) / 2)
    with pytest.raises(ValueError, match="student_scale"):
        MarginMSE(student_scale=0)


def _softmax(row, tau):
    exps = [math.exp(x / tau) for x in row]
    return [e / sum(exps) for e in exps]


def test_listwise_kl_matches_the_formula_with_separate_temperatures():
    student = [[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]]
    teacher = [[8.0, 2.0, 0.0], [1.0, 3.0, 2.0]]
    expected = 0.0
    for s_row, t_row in zip(student, teacher):
        p_s, p_t = _softmax(s_row, 0.5), _softmax(t_row, 2.0)
        expected += sum(t * (math.log(t) - math.log(s)) for s, t in zip(p_s, p_t))
    loss = ListwiseKL(student_temperature=0.5, teacher_temperature=2.0)(torch.tensor(student), torch.tensor(teacher))
    assert loss.item() == pytest.approx(expected / 2, rel=1e-5)
    same = torch.tensor(teacher)
    assert ListwiseKL(2.0, 2.0)(same, same).item() == pytest.approx(0, abs=1e-7)


def test_listwise_kl_leaves_masked_columns_out():
    student, teacher = torch.tensor([[1.0, 0.0, 5.0]]), torch.tensor([[2.0, 1.0, -3.0]])
    mask = torch.tensor([[False, False, True]])
    masked = ListwiseKL()(student, teacher, mask)
    assert masked.item() == pytest.approx(ListwiseKL()(student[:, :2], teacher[:, :2]).item(), rel=1e-6)


def test_embedding_distillation_is_mse_plus_cosine_distance():
    student = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    teacher = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    # squared distances 2 and 1; cosines 0 and 1
    loss = EmbeddingDistillation(mse_weight=0.5, cosine_weight=2.0)(student, teacher)
    assert loss.item() == pytest.approx(0.5 * (2 + 1) / 2 + 2.0 * ((1 - 0) + (1 - 1)) / 2)
    teacher.requires_grad_(True)
    EmbeddingDistillation()(student.requires_grad_(True), teacher).backward()
    assert teacher.grad is None and student.grad is not None  # the teacher stays frozen


def test_dual_teacher_is_pairwise_margin_mse_plus_weighted_in_batch_term():
    student_pairs, teacher_pairs = torch.tensor([[2.0, 1.0]]), torch.tensor([[3.0, 0.0]])  # (1 - 3)^2 = 4
    student_batch = torch.tensor([[2.0, 0.0, 1.0], [0.0, 1.0, 3.0]])
    teacher_batch = torch.tensor([[2.0, 1.0, 1.0], [1.0, 2.0, 0.0]])
    targets = torch.tensor([0, 1])
    # query 0 margins vs columns 1, 2: student (2, 1), teacher (1, 1) -> errors 1, 0
    # query 1 margins vs columns 0, 2: student (1, -2), teacher (1, 2) -> errors 0, 16
    loss = DualTeacher(in_batch_weight=0.5)(student_pairs, teacher_pairs, student_batch, teacher_batch, targets)
    assert loss.item() == pytest.approx(4 + 0.5 * (1 + 0 + 0 + 16) / 4)
    mask = torch.tensor([[False, False, False], [False, False, True]])  # column 2 is query 1's other positive
    masked = DualTeacher(in_batch_weight=0.5)(student_pairs, teacher_pairs, student_batch, teacher_batch, targets, mask)
    assert masked.item() == pytest.approx(4 + 0.5 * (1 + 0 + 0) / 3)
    kl = DualTeacher(in_batch_weight=2.0, in_batch="kl")(student_pairs, teacher_pairs, student_batch, teacher_batch,
                                                         targets)
    assert kl.item() == pytest.approx(4 + 2.0 * ListwiseKL()(student_batch, teacher_batch).item())
    # pairwise_scale reaches the pairwise term only: student margin 2 * 1 = 2 against 3 -> 1
    scaled = DualTeacher(in_batch_weight=0.5, pairwise_scale=2.0)(student_pairs, teacher_pairs, student_batch,
                                                                   teacher_batch, targets)
    assert scaled.item() == pytest.approx(1 + 0.5 * (1 + 0 + 0 + 16) / 4)


def _inputs(**extra) -> LossInputs:
    query = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    docs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [1.0, 1.0]])  # 2 positives, then 1 negative each
    return LossInputs(query, docs, targets=torch.tensor([0, 1]), pair_columns=torch.tensor([[0, 2], [1, 3]]), **extra)


def test_objectives_read_what_they_need_from_the_step():
    inputs = _inputs(teacher_pairs=torch.tensor([[3.0, 1.0], [2.0, 2.0]]))
    assert inputs.student_pairs().tolist() == [[1.0, 0.5], [1.0, 1.0]]
    # student margins 0.5 and 0; teacher margins 2 and 0
    assert MarginMSE().compute(inputs).item() == pytest.approx((1.5 ** 2 + 0) / 2)
    with pytest.raises(MissingInput, match="a teacher"):
        MarginMSE().compute(_inputs())
    with pytest.raises(MissingInput, match="hard negatives"):
        MarginMSE().compute(LossInputs(inputs.query, inputs.docs, inputs.targets))


def test_weighted_sum_adds_named_terms_and_keeps_each_value():
    inputs = _inputs(teacher_pairs=torch.tensor([[3.0, 1.0], [2.0, 2.0]]))
    infonce, margin = InfoNCE(0.5), MarginMSE()
    combined = WeightedSum({"infonce": {"loss": infonce, "weight": 1.0}, "margin_mse": {"loss": margin, "weight": 0.25}})
    expected = infonce.compute(inputs) + 0.25 * margin.compute(inputs)
    assert combined.compute(inputs).item() == pytest.approx(expected.item())
    assert combined.last_terms == pytest.approx({"infonce": infonce.compute(inputs).item(), "margin_mse": 1.125})
    with pytest.raises(ValueError, match="exactly 'loss' and 'weight'"):
        WeightedSum({"infonce": {"loss": infonce}})


def test_only_an_objective_that_reads_documents_has_them_encoded():
    distil = EmbeddingDistillation()
    assert distil.reads_documents is False and getattr(InfoNCE(), "reads_documents", True)
    both = WeightedSum({"distil": {"loss": distil, "weight": 1.0}, "infonce": {"loss": InfoNCE(), "weight": 1.0}})
    assert both.reads_documents is True
    assert WeightedSum({"distil": {"loss": distil, "weight": 1.0}}).reads_documents is False
    inputs = _inputs()
    with pytest.raises(MissingInput, match="document embeddings"):
        InfoNCE().compute(LossInputs(inputs.query, None, inputs.targets))


def test_cross_encoder_losses_match_the_formulas():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
    sigmoid = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    bce = -sum(math.log(sigmoid(row[0])) + sum(math.log(1 - sigmoid(x)) for x in row[1:])
               for row in logits.tolist()) / 6
    assert PointwiseBCE()(logits).item() == pytest.approx(bce, rel=1e-6)
    ce = -sum(row[0] - math.log(sum(math.exp(x) for x in row)) for row in logits.tolist()) / 2
    assert ListwiseCE()(logits).item() == pytest.approx(ce, rel=1e-6)
