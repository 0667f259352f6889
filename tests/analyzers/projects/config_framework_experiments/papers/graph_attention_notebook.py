"""What a notebook next to the experiment does: build the experiment's configuration class imported from the
sibling module and call its training loop. Nothing seeds torch."""

from papers.graph_attention import GraphConfigs

trainer = GraphConfigs()
trainer.run()  # expect: SAN401
