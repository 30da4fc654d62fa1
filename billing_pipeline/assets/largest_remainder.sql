-- largest_remainder: an amount split exactly over weights, in integer units of 1e-10 by largest remainder (ties by
-- accountant_id), so that a split's parts add up to its amount to the last unit. cost_allocations.sql and
-- account_level_allocations.sql include it (sql.py) as the body of a CTE.
-- Input: a relation `split_inputs`, one row per split x accountant_id: `split_id`, `amount` (the DECIMAL(38, 10)
-- to split, the same on every row of the split), `weight` (an integer DECIMAL(38, 0), >= 0), `total_weight` (the
-- split's sum of weights), any other columns (kept). Output: its rows with `units`, the accountant's signed part
-- in units of 1e-10.
-- Tenant t gets floor(|C| w_t / W) units and the units left go one each to the largest remainders. |C| w_t may
-- exceed DECIMAL(38), so |C| is taken in two limbs, |C| = hi * 1e9 + lo, and every quotient below is small enough
-- (< 2^53) to be exact:
--   floor(|C| w / W) = 1e9 * floor(hi w / W) + floor(((hi w mod W) * 1e9 + lo w) / W)
-- (hi w stays within DECIMAL(38) for any amount under $1e10 split by weights under 1e27 units; beyond that the
-- engine reports an overflow rather than a wrong number.)
WITH limbs AS (
    SELECT *,
           CAST(amount * 10000000000 AS DECIMAL(38, 0))                                 AS amount_units,
           CAST(floor(abs(amount) * 10) AS DECIMAL(38, 0))                              AS amount_hi,
           CAST(abs(amount) * 10000000000 AS DECIMAL(38, 0)) % 1000000000               AS amount_lo
    FROM split_inputs
),
high_limb AS (
    SELECT *,
           CAST(round((amount_hi * weight - (amount_hi * weight) % total_weight) / total_weight) AS DECIMAL(38, 0))
                                                                                        AS q_hi,
           (amount_hi * weight) % total_weight * 1000000000 + amount_lo * weight        AS t_lo
    FROM limbs
),
floored AS (
    SELECT *,
           q_hi * 1000000000
             + CAST(round((t_lo - t_lo % total_weight) / total_weight) AS DECIMAL(38, 0)) AS base_units,
           t_lo % total_weight                                                          AS remainder
    FROM high_limb
),
ranked AS (
    SELECT *,
           abs(amount_units) - sum(base_units) OVER (PARTITION BY split_id)             AS units_left,
           row_number() OVER (PARTITION BY split_id ORDER BY remainder DESC, accountant_id) AS remainder_rank
    FROM floored
)
SELECT *,
       -- the sign as an integer CASE, not sign(): Spark's sign() is a DOUBLE, exact only below 2^53 units
       CAST(CASE WHEN amount_units < 0 THEN -1 WHEN amount_units > 0 THEN 1 ELSE 0 END
            * (base_units + CASE WHEN remainder_rank <= units_left THEN 1 ELSE 0 END) AS DECIMAL(38, 0)) AS units
FROM ranked
