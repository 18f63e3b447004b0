-- Wide pass matrix of the prompt with the most candidates (edit the WHERE to pick one).
SELECT code_index, cells, tests_passed FROM pass_matrix_grid
WHERE prompt_id = (SELECT prompt_id FROM pass_matrix_summary ORDER BY codes DESC, prompt_id LIMIT 1)
ORDER BY code_index;
