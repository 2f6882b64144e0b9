"""The command-line tools (t2t-train, t2t-translate, t2t-evaluate, t2t-export): thin absl apps."""
