"""ament_python package: `colcon build` on a robot, `pip install -e .` in the development venv."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "trt_perception"

NODES = {
    "camera_bridge": "camera_bridge",
    "detector": "detector",
    "plate_reader": "plate_reader",
    "segmentation": "segmentation",
    "pilot": "pilot",
    "behavior_evaluator": "behavior_evaluator",
    "engine_builder": "engine_builder",
    "perception_pipeline": "perception_pipeline",
    "bag_replay": "bag_replay",
    "live_scorer": "live_scorer",
    "circuit_sim": "circuit_sim",
}

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.xml")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/models", glob("models/*.onnx") + glob("models/*.md") + glob("models/*.txt")),
    ],
    install_requires=["setuptools"],
    package_data={"trt_perception.sim": ["circuits/*.csv"]},
    zip_safe=False,
    maintainer="trt_perception maintainers",
    maintainer_email="maintainers@trt-perception.dev",
    description="TensorRT perception nodes for ROS 2: detection, plate reading, segmentation, driving brain, evaluation.",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [f"{exe} = {PACKAGE}.nodes.{mod}:main" for exe, mod in NODES.items()]
        + [f"trt-perception = {PACKAGE}.cli:main"],
    },
)
