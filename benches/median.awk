# The median of a column of sorted numbers, one a line (for the bench scripts).
{ v[NR] = $1 }
END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }
