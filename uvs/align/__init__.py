"""Karpathy & Fei-Fei's visual-semantic alignment model: words to image regions.

`model` (BRNN over words, region map, S_kl score, structured max-margin objective),
`mrf` (phrases by exact dynamic programming), `regions` (region feature files),
`train`, `evaluation` and `show`.
"""
