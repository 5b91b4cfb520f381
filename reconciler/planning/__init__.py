"""Planning: normalize, diff, classify, place, pair and order changes into a plan. Pure, except reading live state through a backend in reconcile."""
