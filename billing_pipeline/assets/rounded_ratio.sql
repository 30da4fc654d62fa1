-- rounded_ratio: round(|C| x n / d) half away from zero, exactly, in integer units of 1e-10 (part_units), for
-- 0 <= n <= d, d > 0. |C| x n may exceed DECIMAL(38), so |C| is taken in two limbs, |C| = c_hi * 1e9 + c_lo (as
-- largest_remainder.sql splits), and every quotient is small enough (< 2^53) to be exact. account_level_lines.sql
-- (the application's part of a line) and replayed_cost_facts.sql (a tax so far) include it (sql.py) as the body of
-- a CTE. Input: a relation `ratio_inputs` with `c_hi`, `c_lo`, `n`, `d` (integer DECIMAL(38, 0)) and any other
-- columns (kept). Output: its rows with `part_units` (unsigned: the caller puts C's sign back).
WITH high_limb AS (
    SELECT *,
           CAST(round((c_hi * n - (c_hi * n) % d) / d) AS DECIMAL(38, 0))                      AS q_hi,
           (c_hi * n) % d * 1000000000 + c_lo * n                                              AS t_lo
    FROM ratio_inputs
)
SELECT *,
       q_hi * 1000000000 + CAST(round((t_lo - t_lo % d) / d) AS DECIMAL(38, 0))
         + CASE WHEN 2 * (t_lo % d) >= d THEN 1 ELSE 0 END                                     AS part_units
FROM high_limb
