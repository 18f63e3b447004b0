-- Per-prompt pass-matrix summary, hardest prompts first.
SELECT * FROM pass_matrix_summary ORDER BY pass_rate, prompt_id;
