"""People: reading uploaded CSVs (reading), what their columns mean (columns), prospect rows (rows), who a
person is (identity) and prospects in the database (prospects)."""
