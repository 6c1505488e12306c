# The firmware as on a board whose lib/ is in a ROMFS partition: main.py,
# config.json and web/ on the filesystem (the working directory), lib/ in the
# ROMFS image lib.romfs mounted at /rom and executed in place. The Unix port
# has no memory outside its GC heap, so the image is read into one block
# allocated first, and the heap is made bigger by exactly that block: what is
# left free equals a plain heap of the budget (heap_report.romfs_heapsize();
# the "ROMFS <image> <free>" line proves it).
# Run as the script, it then starts the firmware; imported (probes/firmware.py),
# it only mounts. heap_report.romfs_heapsize_exact() runs the part above
# `if __name__` on its own.
import gc, sys, vfs
f = open("lib.romfs", "rb")
rom = bytearray(f.seek(0, 2))
f.seek(0)
f.readinto(rom)
f.close()
del f
vfs.mount(vfs.VfsRom(rom), "/rom")
sys.path.append("/rom")
gc.collect()
print("ROMFS", len(rom), gc.mem_free())
if __name__ == "__main__":
    sys.path.insert(0, ".")
    import main  # reads --port from sys.argv
