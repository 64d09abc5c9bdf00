"""Faces in video: frames in (``source``), boxes followed over time (``tracker``), one identity
decision per track (``tracking``), annotated output (``draw``) and challenge-response liveness
(``liveness``).

>>> import faceatlas
>>> for track in faceatlas.track("door.mp4", gallery=faceatlas.Gallery.open("people.db")):
...     print(track.person, track.start, track.end)

Nothing heavy is imported here: OpenCV and the models load when a video is opened.
"""
