"""A/B/n experiments on templates, from the plan to the promoted winner.

`planning` sizes the sample; `catalog` creates and lists experiments (and holds the segment rule and the
decision record); `assignment` gives each prospect a sticky arm; `outcomes` records what happened to them;
`results` turns counts into statistics (`stats`) and a typed verdict; `decisions` promotes or stops;
`variants` asks a model for new templates to test.
"""
