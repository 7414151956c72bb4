"""Looking at models: attention maps, figures, FLOPs, statistics, comparisons of variants, transfer."""
