"""Microcontrollers, torch-free: compile an int8 `.tflite` to C (`compiler`), build and run the firmware on a
target (`targets`), drive it over a serial link (`protocol`) and benchmark it (`bench_mcu`).

`deploy_esp32` is imported lazily so that `import edgekd.mcu` stays cheap."""


def deploy_esp32(*args, **kwargs):
    from edgekd.mcu.deploy import deploy_esp32 as deploy

    return deploy(*args, **kwargs)
