"""`asgd`, the application: the command line, experiment configs, sweeps into result folders,
the small-network experiment and the figures of a result folder.

    asgd reproduce --quick        # or: python -m asgd reproduce --quick

It sits above the library (objectives -> simulate -> analysis -> asgd): it imports them, they
never import it. `import asgd` itself loads nothing; import the module you need (`asgd.cli`,
`asgd.config`, `asgd.sweep`, `asgd.network`, ...); network experiments from Python:
`asgd.networks`.
"""
