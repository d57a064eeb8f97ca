"""Segment consensus: K per-segment class-score vectors -> one video score (docs/method.md, section 6)."""

CONSENSUS = ("mean", "max", "var")


def segment_consensus(scores, mode):
    """scores: (B, K, C) -> (B, C).

    mean: average over segments. max: elementwise max over segments.
    var:  weights w_k = Var_c(s_k), the variance of segment k's scores over the classes,
          normalised to sum to one, so a peaked (confident) segment counts more and the
          output stays on the scale of `mean`. The original two-stream scripts summed s_k * Var(s_k) unnormalised.
    """
    if mode == "mean":
        return scores.mean(dim=1)
    if mode == "max":
        return scores.amax(dim=1)
    if mode == "var":
        w = scores.var(dim=2, unbiased=False)  # (B, K)
        # A tiny floor keeps all-equal segments (zero variance) at the mean instead of 0/0.
        w = w + 1e-12
        w = w / w.sum(dim=1, keepdim=True)
        return (w.unsqueeze(-1) * scores).sum(dim=1)
    raise ValueError(f"unknown consensus '{mode}' (choose from {', '.join(CONSENSUS)})")
