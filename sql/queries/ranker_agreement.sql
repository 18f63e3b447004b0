-- How often two rankers choose the same top code.
SELECT * FROM verification_scores_agreement;
