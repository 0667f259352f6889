"""A variant that reuses the experiment's ``Configs`` class from a sibling module and only widens the model: still
a training run of the framework, still unseeded."""

from labml import experiment

from papers.gated_rnn_experiment import Configs


def main():
    experiment.create(name="gated_rnn_wide")
    conf = Configs()
    experiment.configs(conf, {"d_model": 512, "epochs": 16})
    with experiment.start():
        conf.run()


if __name__ == "__main__":
    main()  # expect: SAN401
