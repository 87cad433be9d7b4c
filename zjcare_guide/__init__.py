"""zjcare-guide: scientific-parenting guidance for Zhuji families."""
