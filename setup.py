"""pip packaging of tfadv.

TensorFlow comes as an extra, because one package cannot choose between the CPU-only wheel
and the GPU one:  `pip install -e .[cpu]`  (no GPU)  or  `pip install -e .[gpu]`.
"""

import setuptools

setuptools.setup(
    name="tfadv",
    version="0.1.0",
    description="Adversarially robust image classifiers with TensorFlow/Keras: AT+ALP, AAD, "
                "attacks, evaluation and export to TensorFlow Serving.",
    packages=setuptools.find_packages(include=["tfadv", "tfadv.*", "trainers", "serving"]),
    python_requires=">=3.10",
    install_requires=[
        "keras>=3.15,<3.16",
        "cleverhans==4.0.0",
        "tensorflow-datasets==4.9.10",
        "importlib_resources",  # tfds 4.9.10 imports it without declaring it.
        "absl-py>=2.1",
        "tensorboard>=2.20",  # tf.summary writers; tensorflow-cpu 2.21 does not pull it in.
        "matplotlib>=3.8",  # plots in evaluation reports and analyses
        "numpy>=1.26",
        "Pillow>=10",  # validating image folders before tf.data reads them
        "scikit-learn>=1.4",  # the `digits` dataset (real 8x8 images for fast runs)
    ],
    extras_require={
        "cpu": ["tensorflow-cpu>=2.21,<2.22"],
        "gpu": ["tensorflow[and-cuda]>=2.21,<2.22"],
        "test": ["pytest>=8", "pytest-xdist>=3.5", "jsonschema>=4.18"],
        # gRPC client/server of TensorFlow Serving. tensorflow-serving-api itself must be
        # installed separately with `pip install --no-deps "tensorflow-serving-api>=2.21,<2.22"`:
        # it requires the full `tensorflow` wheel, which would replace tensorflow-cpu.
        "serving": ["grpcio>=1.24.3,<2", "protobuf>=6.31.1,<8"],
        # The peers benchmarks/step_time.py times beside tfadv (not needed to use tfadv).
        # NSL 1.4.0 runs only on legacy tf-keras, which must be installed separately with
        # `pip install --no-deps "tf-keras>=2.21,<2.22"`: it requires the full `tensorflow`
        # wheel, which would replace tensorflow-cpu (as tensorflow-serving-api does).
        # ART's AutoAttack imports `multiprocess` without declaring it (benchmarks/eval_time.py).
        "bench": ["adversarial-robustness-toolbox==1.20.1", "multiprocess>=0.70",
                  "neural-structured-learning==1.4.0"],
    },
    entry_points={
        "console_scripts": [
            "tfadv-train=trainers.train:run",
            "tfadv-evaluate=trainers.evaluate:run",
            "tfadv-analyze=trainers.analyze:run",
            "tfadv-export=trainers.export:run",
            "tfadv-client=trainers.client:run",
            "tfadv-study=trainers.study:run",
        ],
    },
)
