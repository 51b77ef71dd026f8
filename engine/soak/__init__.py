"""``vj bench --soak MINUTES``: the engine runs headless in a child process while a fault
injector (this process) does what a bad night does, and a monitor measures what came out."""
