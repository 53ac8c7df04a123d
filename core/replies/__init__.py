"""Prospects' replies: sort each into one of eight categories and carry out what its category asks for.

`importing` stores a file of replies (each stops its prospect's sequence at once, `holds`); `classify` asks the
model, strictly, with `cleaning` and `dates` around it and `rules` as the offline classifier; `routing` carries
out the configured action and sets the reply's sequence hold; `review` is a person's table and override;
`evaluation` measures a classifier on the labelled replies. `categories` names the eight categories.
"""
