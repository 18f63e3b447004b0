-- Seeds dropped for overlapping HumanEval, with the overlap score and matched task.
SELECT partition_key, path, symbol, detail FROM seeds_rejected
WHERE reason = 'decontaminated' ORDER BY partition_key, symbol;
