"""Getting one repo's checkout: the URL policy and ``git`` with a timeout that kills its whole process
group, and the failure kinds (``git``), the partial checkout that downloads only the files a digest reads
(``strategy``), and removing a checkout whatever it holds (``cleanup``); a dead shard's git processes are killed by
``core.watchdog``. It may import ``core`` and ``digest`` (the digest's ignore rules decide what a partial
checkout downloads).
"""
