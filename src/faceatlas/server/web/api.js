// faceatlas 0.1.0 client: GENERATED from docs/openapi.json by
// scripts/gen_api_client.py. Do not edit; run `python scripts/gen_api_client.py` after the schema changes.

/** An API error: the HTTP status, and the code and message of the server's {"error": {...}} body. */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status (0: the server could not be reached)
   * @param {string} code a stable machine-readable code, e.g. "unauthorized", "not_found"
   * @param {string} message what went wrong, as the server said it
   * @param {*} [body] the parsed error body, if any
   */
  constructor(status, code, message, body = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

const config = { baseUrl: "", apiKey: null, fetch: null };

/**
 * Set the API key (sent as "Authorization: Bearer ..."; null: none), the base URL the paths are
 * relative to ("" = this origin), and optionally a fetch implementation.
 * @param {{apiKey?: string|null, baseUrl?: string, fetch?: typeof fetch}} options
 */
export function configure(options) {
  for (const key of ["apiKey", "baseUrl", "fetch"]) {
    if (options && key in options) config[key] = options[key];
  }
}

function pathPart(name, value) {
  if (value === undefined || value === null || value === "") {
    throw new TypeError(`path parameter ${name} is required`);
  }
  return encodeURIComponent(String(value));
}

function queryString(query, names, required) {
  const params = new URLSearchParams();
  const given = query || {};
  for (const key of Object.keys(given)) {
    if (!names.includes(key)) throw new TypeError(`unknown query parameter ${key}`);
  }
  for (const name of names) {
    const value = given[name];
    if (value === undefined || value === null) {
      if (required.includes(name)) throw new TypeError(`query parameter ${name} is required`);
      continue;
    }
    for (const item of Array.isArray(value) ? value : [value]) params.append(name, String(item));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

function formData(body, fields) {
  if (body instanceof FormData) return body;
  const form = new FormData();
  for (const key of Object.keys(body || {})) {
    if (!(key in fields)) throw new TypeError(`unknown form field ${key}`);
  }
  for (const [name, kind] of Object.entries(fields)) {
    const value = body ? body[name] : undefined;
    if (value === undefined || value === null) continue;
    const items = kind === "files" || kind === "values" ? (Array.isArray(value) ? value : [value]) : [value];
    for (const item of items) {
      if (item instanceof Blob) form.append(name, item, item.name || name);
      else form.append(name, String(item));
    }
  }
  return form;
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const detail = body && typeof body === "object" && body.error && typeof body.error === "object" ? body.error : {};
  const code = typeof detail.code === "string" ? detail.code : `http_${response.status}`;
  const message =
    typeof detail.message === "string" && detail.message
      ? detail.message
      : `${response.status} ${response.statusText || "error"}`.trim();
  return new ApiError(response.status, code, message, body);
}

async function read(response, expect) {
  if (response.status === 204 || response.status === 205 || expect === "none") return null;
  const type = (response.headers.get("content-type") || "").toLowerCase();
  if (expect === "blob") return response.blob();
  if (type.includes("json")) return response.json();
  if (expect === "json") {
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  }
  if (expect === "text" || type.startsWith("text/")) return response.text();
  return response.blob();
}

/**
 * One call: what every generated function does, usable for paths the schema does not list.
 * @param {string} method
 * @param {string} path already encoded, with its query string
 * @param {{json?: *, form?: FormData, body?: BodyInit, expect?: string, signal?: AbortSignal}} [options]
 */
export async function request(method, path, options = {}) {
  const headers = { Accept: "application/json, */*;q=0.5" };
  if (config.apiKey) headers.Authorization = `Bearer ${config.apiKey}`;
  let body;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.json);
  } else if (options.form !== undefined) {
    body = options.form; // the browser sets the multipart boundary
  } else if (options.body !== undefined) {
    body = options.body;
  }
  const send = config.fetch || globalThis.fetch.bind(globalThis);
  let response;
  try {
    response = await send(config.baseUrl + path, { method, headers, body, signal: options.signal });
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    throw new ApiError(0, "network_error", `could not reach the server (${error && error.message ? error.message : error})`);
  }
  if (!response.ok) throw await errorOf(response);
  return read(response, options.expect || "auto");
}

/**
 * @typedef {Object} AnalyzeResponse
 * @property {Array<FaceOut>} faces largest first
 * @property {ImageSize} image
 * @property {string} model the embedder's name and version
 */
/**
 * @typedef {Object} CandidateOut
 * @property {string} person
 * @property {number} score
 */
/**
 * @typedef {Object} ClusterBornRequest
 * @property {string|null} born the person's birth date (YYYY-MM-DD); null forgets it
 */
/**
 * @typedef {Object} ClusterChanged
 * @property {string|null} [born] the person's birth date, YYYY-MM-DD (a life stage: its person's)
 * @property {number} enrolled faces this call enrolled into the service's gallery under the cluster's name
 * @property {Array<CollectionFace>} faces highest quality first
 * @property {number|null} [gallery_faces] faces the gallery holds for that name after this call (null: the cluster has no name)
 * @property {number} id
 * @property {string|null} name
 * @property {number|null} [person] a life stage: the cluster of the person it is a stage of
 * @property {boolean} [private] a private person: shown only to keys allowed to see private people
 * @property {number} [unenrolled] faces this call took out of the gallery (the name removed)
 */
/**
 * @typedef {Object} ClusterJobRequest
 * @property {boolean} [full] re-cluster every face (names and corrections still hold)
 */
/**
 * @typedef {Object} ClusterMergeRequest
 * @property {number} into the cluster that keeps its id and name and receives the faces
 */
/**
 * @typedef {Object} ClusterNameRequest
 * @property {string|null} name who the cluster shows (not blank; surrounding spaces are dropped); null removes the name
 */
/**
 * @typedef {Object} ClusterOut
 * @property {string|null} [born] the person's birth date, YYYY-MM-DD (a life stage: its person's)
 * @property {Array<CollectionFace>} faces highest quality first
 * @property {number} id
 * @property {string|null} name
 * @property {number|null} [person] a life stage: the cluster of the person it is a stage of
 * @property {boolean} [private] a private person: shown only to keys allowed to see private people
 */
/**
 * @typedef {Object} ClusterSplit
 * @property {string|null} [born] the person's birth date, YYYY-MM-DD (a life stage: its person's)
 * @property {Array<CollectionFace>} faces highest quality first
 * @property {number} id
 * @property {string|null} name
 * @property {number|null} [person] a life stage: the cluster of the person it is a stage of
 * @property {boolean} [private] a private person: shown only to keys allowed to see private people
 * @property {number} [unenrolled] faces taken out of the gallery person of the cluster they left (when it is named)
 */
/**
 * @typedef {Object} ClusterSplitRequest
 * @property {Array<number>} faces ids of the faces that move to a new cluster
 */
/**
 * @typedef {Object} ClusterStageRequest
 * @property {number|null} person a cluster of the person this cluster is a life stage of; null unlinks
 */
/**
 * @typedef {Object} ClusterSummary
 * @property {string|null} [born] the person's birth date, YYYY-MM-DD (a life stage: its person's)
 * @property {number|null} cover_face_id its highest-quality face (null: no face)
 * @property {number} faces how many faces it holds
 * @property {number} id
 * @property {string|null} name null until named
 * @property {number|null} [person] a life stage: the cluster of the person it is a stage of
 * @property {boolean} [private] a private person: shown only to keys allowed to see private people
 */
/**
 * @typedef {Object} ClustersResponse
 * @property {Array<ClusterSummary>} clusters most faces first, then by id
 * @property {number} total clusters in the collection (for paging)
 */
/**
 * @typedef {Object} CollectionFace
 * @property {Array<number>} box [x1, y1, x2, y2] pixels of the EXIF-rotated photo
 * @property {number|null} cluster_id its cluster; -1 = unassigned, null = not clustered yet
 * @property {number|null} [end]
 * @property {number} id a collection face id (not a gallery face id)
 * @property {"detected"|"manual"|"region"} [origin] detected; manual: drawn by a user; region: from a named region of the photo's metadata
 * @property {number} photo_id
 * @property {number|null} quality usefulness for recognition, 0..1
 * @property {number|null} [start] a video's face: when its track starts and ends (seconds)
 * @property {number|null} [time] a video's face: seconds into the video of the frame its box is in (null: a photo's)
 */
/**
 * @typedef {Object} DeletedResponse
 * @property {Array<number>} [clusters] collection clusters that carried the name: now unnamed, faces kept
 * @property {string} deleted
 * @property {number} faces faces (embeddings) removed with it from the gallery (0: it was not there)
 * @property {Array<string>} [kept] what of the person remains stored, and why (e.g. PostgreSQL's write-ahead log)
 */
/**
 * @typedef {Object} DrawnFace
 * @property {Array<number>} box [x1, y1, x2, y2] pixels of the photo as displayed (EXIF-rotated)
 * @property {string|null} [person] who it is: the face joins that person's cluster
 */
/**
 * @typedef {Object} EnrollResponse
 * @property {Array<number>} added ids of the faces enrolled
 * @property {string} person
 * @property {Array<SkippedOut>} skipped
 */
/**
 * @typedef {Object} ErrorDetail
 * @property {string} code a stable machine-readable code, e.g. invalid_image, unauthorized
 * @property {string} message what went wrong and how to fix it
 */
/**
 * @typedef {Object} ErrorResponse
 * @property {ErrorDetail} error
 */
/**
 * @typedef {Object} FaceOut
 * @property {Array<number>} box [x1, y1, x2, y2] pixels
 * @property {Array<number>|null} [embedding] L2-normalised; only with ?embeddings=true
 * @property {Array<Array<number>>} landmarks five [x, y] points
 * @property {PoseOut|null} [pose]
 * @property {QualityOut|null} [quality]
 * @property {number} score detector confidence
 */
/**
 * @typedef {Object} FaceSearchHit
 * @property {Array<number>} box [x1, y1, x2, y2] pixels of the EXIF-rotated photo
 * @property {number|null} cluster_id its cluster; -1 = unassigned, null = not clustered yet
 * @property {number} face_id a collection face id
 * @property {boolean} match whether it reaches the threshold at the asked FPIR
 * @property {string} path the photo's path, relative to the folder it was indexed from
 * @property {string|null} person its cluster's name (null: nobody named it)
 * @property {number} photo_id
 * @property {number|null} quality usefulness for recognition, 0..1
 * @property {number} similarity cosine similarity to the probe (higher = more alike)
 * @property {string|null} taken_at the photo's EXIF capture time, camera local time (null: unknown)
 * @property {number|null} [time] a video's face: seconds into the video
 */
/**
 * @typedef {Object} FaceSearchResponse
 * @property {number} fpir false-positive identification rate the threshold is calibrated for
 * @property {Array<FaceSearchHit>} hits best first; below the threshold too (match false)
 * @property {boolean} matched false = no match at this FPIR (the hits are then only the nearest faces)
 * @property {Array<string>} notes caveats, in words
 * @property {number} searched faces that passed the filters (the comparisons the threshold counts)
 * @property {string} strategy exact, exact-prefilter, ann or ann-filtered
 * @property {number} threshold the similarity a hit needs to be a match
 * @property {number} total faces in the collection
 */
/**
 * @typedef {Object} ForgetResponse What forgetting removed where, how it was erased, and what was kept (and why).
 * @property {Array<number>} clusters the collection's clusters of that name, removed with their faces
 * @property {number|null} collection_faces faces (with embeddings) removed from the collection
 * @property {number} constraints corrections (constraints) removed with those faces
 * @property {Array<string>} erased how the deleted bytes were erased
 * @property {number|null} gallery_faces faces removed from the gallery; null: the person was not in it
 * @property {Array<string>} kept what remains and why (your photos, your exports, logs)
 * @property {Array<string>} matched stored names that matched in another case or form
 * @property {string} name
 * @property {Array<SidecarProblem>} sidecar_problems
 * @property {Array<string>} sidecars sidecars faceatlas wrote that the person's regions were taken out of
 */
/**
 * @typedef {Object} Health
 * @property {string|null} [detector] the face detector bound (FACEATLAS_DETECTOR): name and version
 * @property {string|null} [embedder] the face embedder bound (FACEATLAS_EMBEDDER): name and version, as galleries and collections record it
 * @property {"ok"} status
 * @property {string} version
 */
/**
 * @typedef {Object} IdentificationOut
 * @property {Array<CandidateOut>} candidates
 * @property {FaceOut|null} face
 * @property {number} fpir false-positive identification rate the threshold was set for
 * @property {Array<string>} notes
 * @property {string|null} person the decision: a name, or null for "unknown"
 * @property {number|null} score the best candidate's score
 * @property {number} threshold
 */
/**
 * @typedef {Object} IdentifyResponse
 * @property {Array<IdentificationOut>} results one per face in the image, largest first
 */
/**
 * @typedef {Object} ImageSize
 * @property {number} height
 * @property {number} width
 */
/**
 * @typedef {Object} IndexJobRequest
 * @property {string} folder a folder inside one of FACEATLAS_PHOTO_ROOTS (a relative path is taken inside the roots)
 */
/**
 * @typedef {Object} JobOut
 * @property {boolean} cancel_requested a cancel was asked while it ran; it stops at its next step
 * @property {number} created_at Unix time, seconds
 * @property {number} done units done (files for an index job, faces for a cluster job, frames read for a video job)
 * @property {string|null} error one line, when it failed
 * @property {number|null} finished_at
 * @property {string} id
 * @property {string} kind 'index', 'cluster' or 'video'
 * @property {string} message
 * @property {Object} params
 * @property {Object|null} result what a finished job did (its report's counts)
 * @property {number|null} started_at
 * @property {"queued"|"running"|"done"|"failed"|"cancelled"} state
 * @property {number|null} total units in all, once known
 */
/**
 * @typedef {Object} JobsResponse
 * @property {Array<JobOut>} jobs newest first
 */
/**
 * @typedef {Object} KeyCreateRequest
 * @property {string} name
 * @property {boolean} [private] the key may see private people (an admin key may anyway)
 * @property {"read"|"write"|"admin"} scope
 */
/**
 * @typedef {Object} KeyCreated
 * @property {string} created_at ISO 8601, UTC
 * @property {string} key_id
 * @property {string|null} last_used_at updated at most once a minute
 * @property {string} name
 * @property {boolean} [private] may see private people (admin keys may, whatever this says)
 * @property {string|null} revoked_at
 * @property {string} scope
 * @property {string} token shown once; only its hash is stored
 */
/**
 * @typedef {Object} KeyOut
 * @property {string} created_at ISO 8601, UTC
 * @property {string} key_id
 * @property {string|null} last_used_at updated at most once a minute
 * @property {string} name
 * @property {boolean} [private] may see private people (admin keys may, whatever this says)
 * @property {string|null} revoked_at
 * @property {string} scope
 */
/**
 * @typedef {Object} KeysResponse
 * @property {Array<KeyOut>} keys
 */
/**
 * @typedef {Object} MergeRequest
 * @property {string} into the person who keeps the faces
 */
/**
 * @typedef {Object} NotThisPersonResponse
 * @property {number} face_id
 * @property {number} former_cluster_id
 * @property {number} [unenrolled] 1 if the face was taken out of its former cluster's gallery person
 */
/**
 * @typedef {Object} PeopleResponse
 * @property {Array<PersonOut>} people
 */
/**
 * @typedef {Object} PersonFaceOut
 * @property {number} id
 * @property {number} quality
 */
/**
 * @typedef {Object} PersonFacesResponse
 * @property {Array<PersonFaceOut>} faces
 * @property {string} person
 */
/**
 * @typedef {Object} PersonOut
 * @property {number} faces
 * @property {Object} metadata
 * @property {string} name
 * @property {boolean} [private] a private person: shown only to keys allowed to see private people
 */
/**
 * @typedef {Object} PhotoDetail
 * @property {number|null} [duration]
 * @property {Array<PhotoFace>} faces largest first (a video's: by time)
 * @property {number|null} height
 * @property {number} id
 * @property {"photo"|"video"} [kind]
 * @property {string} path
 * @property {string} status
 * @property {number|null} width
 */
/**
 * @typedef {Object} PhotoFace
 * @property {Array<number>} box [x1, y1, x2, y2] pixels of the EXIF-rotated photo
 * @property {number|null} cluster_id its cluster; -1 = unassigned, null = not clustered yet
 * @property {string|null} cluster_name the name of its cluster, if named
 * @property {number|null} [end]
 * @property {number} id a collection face id (not a gallery face id)
 * @property {"detected"|"manual"|"region"} [origin] detected; manual: drawn by a user; region: from a named region of the photo's metadata
 * @property {number} photo_id
 * @property {number|null} quality usefulness for recognition, 0..1
 * @property {number|null} [start] a video's face: when its track starts and ends (seconds)
 * @property {number|null} [time] a video's face: seconds into the video of the frame its box is in (null: a photo's)
 */
/**
 * @typedef {Object} PhotoOut
 * @property {number|null} [duration] a video's length in seconds
 * @property {number} faces
 * @property {number|null} height
 * @property {number} id
 * @property {"photo"|"video"} [kind] a video's faces are tracks, each with a time
 * @property {string} path relative to the folder it was indexed from, with '/'
 * @property {string} status 'ok', or 'unreadable: <why>'
 * @property {number|null} width after EXIF rotation; null if unreadable
 */
/**
 * @typedef {Object} PhotosResponse
 * @property {Array<PhotoOut>} photos by folder and path
 * @property {number} total photos matching the filter (for paging)
 */
/**
 * @typedef {Object} PoseOut
 * @property {number} pitch
 * @property {number} roll
 * @property {number} yaw
 */
/**
 * @typedef {Object} PrivacyOut
 * @property {Array<number>} clusters the collection clusters marked
 * @property {boolean} gallery whether a gallery person of that name was marked
 * @property {string|null} name the person's name (null: an unnamed cluster)
 * @property {boolean} private
 */
/**
 * @typedef {Object} PrivateRequest
 * @property {boolean} private true: shown only to keys allowed to see private people; false: to every key
 */
/**
 * @typedef {Object} QualityOut
 * @property {number} confidence
 * @property {number} exposure
 * @property {number|null} [heuristic] the heuristic's score, when score is the learned one
 * @property {string} [method] what made score: "heuristic" or "learned:<embedder card>" (the learned model)
 * @property {number} pose
 * @property {number} score usefulness for recognition, 0..1
 * @property {number} sharpness
 * @property {number} size
 */
/**
 * @typedef {Object} Readiness
 * @property {string} detail
 * @property {boolean} gallery
 * @property {boolean} model_loaded
 * @property {boolean} ready
 */
/**
 * @typedef {Object} RenameRequest
 * @property {string} name
 */
/**
 * @typedef {Object} ReviewAcceptRequest
 * @property {Array<number>} clusters clusters that are all one person
 * @property {number} into the cluster they join (it keeps its id and name)
 */
/**
 * @typedef {Object} ReviewAnswerRequest
 * @property {Array<number|null>|null} [clusters] the question's clusters, as listed: given, an answer after its faces moved is refused (409)
 * @property {Array<number>} faces the question's faces, as listed
 * @property {boolean} [include_private] as the queue was asked (private people take part in it)
 * @property {"merge"|"member"} kind
 * @property {"yes"|"no"|"skip"} reply
 */
/**
 * @typedef {Object} ReviewAnswered
 * @property {Array<number|null>} clusters each face's cluster now (null: unassigned)
 * @property {Array<number>} faces
 * @property {"merge"|"member"} kind
 * @property {"yes"|"no"|"skip"} reply
 * @property {boolean} stored whether the answer changed the collection (a skip changes nothing)
 */
/**
 * @typedef {Object} ReviewCluster
 * @property {number} id
 * @property {number} n_faces
 * @property {string|null} name
 */
/**
 * @typedef {Object} ReviewFace
 * @property {Array<number>} box [x1, y1, x2, y2] pixels
 * @property {number|null} cluster the cluster it stands for (null: an unassigned face)
 * @property {number} face a collection face id (its crop: GET /v1/collection/faces/{id}/thumbnail)
 * @property {string|null} name that cluster's name (null: unnamed)
 * @property {string} path its photo's path, inside the folder it was indexed from
 * @property {number} photo its photo's id
 * @property {number|null} time seconds into a video (null: a photo)
 */
/**
 * @typedef {Object} ReviewGroup
 * @property {number} anchor the face the candidates are asked about
 * @property {ReviewFace} anchor_shown the anchor face, to show it
 * @property {Array<number>} candidates each member's candidate face, in order (what `same` picks from)
 * @property {Array<ReviewQuestion>} members one question per candidate: a merge (faces[0] the anchor, faces[1] the candidate: another person or an unassigned face; shown[1] shows it) or a member (faces[0] the candidate: a face of the anchor's own person that may not be them, shown[0]; faces[1] the anchor)
 */
/**
 * @typedef {Object} ReviewGroupAnswerRequest
 * @property {number} anchor the question's anchor face, as shown
 * @property {Array<number>} candidates the candidate faces shown, in order
 * @property {boolean} [include_private] as the question was asked
 * @property {Array<number>} same those of the candidates that are the anchor's person
 * @property {Array<number>} [skip] the anchors skipped when it was asked (its GET's skip)
 */
/**
 * @typedef {Object} ReviewGroupAnswered
 * @property {number} kept_apart candidates answered no (cannot-linked with the anchor's person; a face of its cluster left it)
 * @property {number} merged candidates answered yes (the anchor's person: joined it, or confirmed in it)
 */
/**
 * @typedef {Object} ReviewGroupAsked
 * @property {ReviewGroup|null} question null: nothing left to ask
 */
/**
 * @typedef {Object} ReviewQuestion
 * @property {Array<number|null>} clusters their clusters (null: unassigned)
 * @property {Array<number>} faces the two faces shown
 * @property {number} gain faces the answer is expected to put right
 * @property {"merge"|"member"} kind merge: are the two sides one person? member: is faces[0] the person of cluster clusters[1]?
 * @property {number} p_same the chance the two sides are one person
 * @property {Array<ReviewFace>} shown each face, to show it
 * @property {number} similarity
 * @property {Array<number>} sizes faces on each side
 * @property {string} text the question as words: "Is this Ada?", "Same person?"
 */
/**
 * @typedef {Object} ReviewQueue
 * @property {Array<ReviewQuestion>} questions best first; empty: nothing left to ask
 */
/**
 * @typedef {Object} SidecarProblem
 * @property {string} reason
 * @property {string} sidecar
 */
/**
 * @typedef {Object} SkippedOut
 * @property {string} reason
 * @property {string} source
 */
/**
 * @typedef {Object} StreamEventOut One event, as the webhook receives it and as each server-sent event's data.
 * @property {Array<number>|null} [box] [x1, y1, x2, y2] pixels of the track's best frame
 * @property {number} id increasing within the stream (the SSE id; Last-Event-ID resumes after it)
 * @property {string} kind track_started, person_seen, unknown_person, track_closed or stream_state
 * @property {string|null} [person] the decision: a name, or null for "unknown"
 * @property {number|null} [score]
 * @property {string} stream
 * @property {Object|null} [summary] on track_closed: the whole track (as a clip's tracks)
 * @property {number|null} [time] video time, seconds since the stream started
 * @property {number|null} [track] the track's id, unique within the stream
 * @property {string} wall_time ISO 8601, UTC
 */
/**
 * @typedef {Object} StreamOut
 * @property {number} detect_every
 * @property {number} dropped frames dropped because analysis was slower than the stream
 * @property {Array<string>} events
 * @property {number|null} fpir
 * @property {number|null} fps
 * @property {number} frames frames analysed
 * @property {string} id
 * @property {string|null} last_error why the stream last dropped or failed to open
 * @property {string|null} last_frame_at
 * @property {number|null} max_reconnects
 * @property {number} published events published so far (the last event id)
 * @property {Array<StreamEventOut>} recent_events the latest events, oldest first
 * @property {number} reconnects times the URL was opened again after a drop, a stall or a failed open
 * @property {string} started_at ISO 8601, UTC
 * @property {"connecting"|"running"|"reconnecting"|"stopped"|"failed"} state
 * @property {string|null} stopped_at
 * @property {number} subscribers server-sent-events clients connected
 * @property {number} tracks faces tracked so far
 * @property {string} url the URL, its password hidden
 * @property {WebhookOut|null} webhook
 */
/**
 * @typedef {Object} StreamRequest
 * @property {number} [detect_every] detect faces in one analysed frame in N, track between
 * @property {Array<"track_started"|"person_seen"|"unknown_person"|"track_closed">} [events] the event kinds to publish (server-sent events and webhook)
 * @property {number|null} [fpir] false-positive identification rate per track (default: the gallery's)
 * @property {number|null} [fps] frames analysed per second (null: every frame)
 * @property {number|null} [max_reconnects] failed reconnects in a row before the stream fails; null: forever
 * @property {string} url the camera or stream: rtsp://, rtsps://, rtmp://, rtmps://, srt://, http:// or https:// (MJPEG, HLS...); never a file path. A password in it is never shown back
 * @property {string|null} [webhook] http(s) URL each event is POSTed to as JSON (optional)
 */
/**
 * @typedef {Object} StreamsResponse
 * @property {Array<StreamOut>} streams newest first
 */
/**
 * @typedef {Object} VerifyResponse
 * @property {number|null} far false-accept rate the threshold was calibrated for
 * @property {boolean} is_match
 * @property {number} similarity cosine similarity of the two faces
 * @property {number} threshold
 */
/**
 * @typedef {Object} VideoLink
 * @property {number} expires Unix time after which the link is refused
 * @property {string} url the path of the video's file (from the service's root), playable by a <video> element without an API key; add '#t=SECONDS' to start there
 */
/**
 * @typedef {Object} WebhookOut
 * @property {number} dropped events dropped unsent: the receiver was slower than the stream, or it stopped
 * @property {number} errors failed attempts, retries included
 * @property {number} failed events given up after every retry
 * @property {string|null} last_error
 * @property {number} pending
 * @property {number} sent events delivered (HTTP 2xx)
 * @property {string} url
 */

/**
 * Liveness: the process answers
 * Also names the models the service runs (loaded or not yet).
 * `GET /healthz`
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<Health>}
 */
export async function health(options = {}) {
  return request("GET", `/healthz`, { expect: "json", signal: options.signal });
}

/**
 * Prometheus metrics
 * Needs an admin key, unless FACEATLAS_METRICS_PUBLIC is set (a scraper on a private network).
 * `GET /metrics`
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<string>}
 */
export async function metrics(options = {}) {
  return request("GET", `/metrics`, { expect: "text", signal: options.signal });
}

/**
 * Readiness: models loaded and gallery open
 * ``?load=true`` loads the models now (a start-up probe can pay the load before traffic).
 * `GET /readyz`
 * @param {{query?: {load?: boolean}, signal?: AbortSignal}} [options]
 * @returns {Promise<Readiness>}
 */
export async function ready(options = {}) {
  const qs = queryString(options.query, ["load"], []);
  return request("GET", `/readyz${qs}`, { expect: "json", signal: options.signal });
}

/**
 * Find every face in an image
 * Box, score, landmarks, pose and quality of every face, largest first.
 * `POST /v1/analyze`
 * @param {{query?: {embeddings?: boolean}, body: {image: Blob}|FormData, signal?: AbortSignal}} options
 * @returns {Promise<AnalyzeResponse>}
 */
export async function analyze(options = {}) {
  const qs = queryString(options.query, ["embeddings"], []);
  if (options.body === undefined || options.body === null) {
    throw new TypeError("analyze needs a body");
  }
  return request("POST", `/v1/analyze${qs}`, { form: formData(options.body, {"image": "file"}), expect: "json", signal: options.signal });
}

/**
 * People found in the photos
 * Clusters with most faces first (then by id), each with its best face as a cover.
 * `GET /v1/collection/clusters`
 * @param {{query?: {limit?: number, offset?: number}, signal?: AbortSignal}} [options]
 * @returns {Promise<ClustersResponse>}
 */
export async function listClusters(options = {}) {
  const qs = queryString(options.query, ["limit", "offset"], []);
  return request("GET", `/v1/collection/clusters${qs}`, { expect: "json", signal: options.signal });
}

/**
 * One cluster and its faces
 * `GET /v1/collection/clusters/{cluster_id}`
 * @param {number} clusterId a cluster id (GET /v1/collection/clusters)
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<ClusterOut>}
 */
export async function getCluster(clusterId, options = {}) {
  return request("GET", `/v1/collection/clusters/${pathPart("cluster_id", clusterId)}`, { expect: "json", signal: options.signal });
}

/**
 * Name a cluster (or remove its name)
 * A named cluster is a person: its faces are enrolled into the service's gallery under the name (faces below the gallery's quality floor are left out), so `/v1/identify` finds them. Renaming a named cluster renames its gallery person too (when the new name is free there). Removing the name takes the cluster's faces out of the gallery again (and the person, if that leaves it with no face).
 * `PATCH /v1/collection/clusters/{cluster_id}`
 * @param {number} clusterId a cluster id (GET /v1/collection/clusters)
 * @param {{body: ClusterNameRequest, signal?: AbortSignal}} options
 * @returns {Promise<ClusterChanged>}
 */
export async function nameCluster(clusterId, options = {}) {
  if (options.body === undefined || options.body === null) {
    throw new TypeError("nameCluster needs a body");
  }
  return request("PATCH", `/v1/collection/clusters/${pathPart("cluster_id", clusterId)}`, { json: options.body, expect: "json", signal: options.signal });
}

/**
 * Record a person's birth date
 * Later cluster jobs keep out of the person the faces of photos dated (EXIF) before that day, as a look-alike older relative's are. On a life stage, it is the person's date. A date in the future is refused (422).
 * `PUT /v1/collection/clusters/{cluster_id}/born`
 * @param {number} clusterId a cluster id (GET /v1/collection/clusters)
 * @param {{body: ClusterBornRequest, signal?: AbortSignal}} options
 * @returns {Promise<ClusterChanged>}
 */
export async function setBirthDate(clusterId, options = {}) {
  if (options.body === undefined || options.body === null) {
    throw new TypeError("setBirthDate needs a body");
  }
  return request("PUT", `/v1/collection/clusters/${pathPart("cluster_id", clusterId)}/born`, { json: options.body, expect: "json", signal: options.signal });
}

/**
 * Merge a cluster into another
 * Every face of this cluster moves to `into`, which keeps its id and name (or takes this cluster's name if it has none); later cluster jobs keep the merged faces together. Two differently named clusters, or clusters with faces in one photo, are not merged (409).
 * `POST /v1/collection/clusters/{cluster_id}/merge`
 * @param {number} clusterId a cluster id (GET /v1/collection/clusters)
 * @param {{body: ClusterMergeRequest, signal?: AbortSignal}} options
 * @returns {Promise<ClusterChanged>}
 */
export async function mergeClusters(clusterId, options = {}) {
  if (options.body === undefined || options.body === null) {
    throw new TypeError("mergeClusters needs a body");
  }
  return request("POST", `/v1/collection/clusters/${pathPart("cluster_id", clusterId)}/merge`, { json: options.body, expect: "json", signal: options.signal });
}

/**
 * Make a cluster a life stage of a person (or its own person again)
 * A life stage is one person's template of one stage of life (a child's face and the adult's are far apart to any embedder): it shows the person's name and birth date, its faces are enrolled under the name, and cluster jobs never merge it. A stage with a name of its own (422) or with a face in a photo of the person's (409) is refused. `person: null` unlinks it.
 * `PUT /v1/collection/clusters/{cluster_id}/person`
 * @param {number} clusterId a cluster id (GET /v1/collection/clusters)
 * @param {{body: ClusterStageRequest, signal?: AbortSignal}} options
 * @returns {Promise<ClusterChanged>}
 */
export async function setLifeStage(clusterId, options = {}) {
  if (options.body === undefined || options.body === null) {
    throw new TypeError("setLifeStage needs a body");
  }
  return request("PUT", `/v1/collection/clusters/${pathPart("cluster_id", clusterId)}/person`, { json: options.body, expect: "json", signal: options.signal });
}

/**
 * Mark a cluster (a person) private (or not)
 * Marks the cluster and, when it is named, the gallery person of its name.
 * `PUT /v1/collection/clusters/{cluster_id}/private`
 * @param {number} clusterId a cluster id
 * @param {{body: PrivateRequest, signal?: AbortSignal}} options
 * @returns {Promise<PrivacyOut>}
 */
export async function setClusterPrivate(clusterId, options = {}) {
  if (options.body === undefined || options.body === null) {
    throw new TypeError("setClusterPrivate needs a body");
  }
  return request("PUT", `/v1/collection/clusters/${pathPart("cluster_id", clusterId)}/private`, { json: options.body, expect: "json", signal: options.signal });
}

/**
 * Move some faces to a new cluster
 * The faces given (some, not all, of this cluster's) move to a new, unnamed cluster, which is returned; later cluster jobs keep them together and apart from the faces that stayed. When the cluster is named, the faces moved are taken out of its gallery person.
 * `POST /v1/collection/clusters/{cluster_id}/split`
 * @param {number} clusterId a cluster id (GET /v1/collection/clusters)
 * @param {{body: ClusterSplitRequest, signal?: AbortSignal}} options
 * @returns {Promise<ClusterSplit>}
 */
export async function splitCluster(clusterId, options = {}) {
  if (options.body === undefined || options.body === null) {
    throw new TypeError("splitCluster needs a body");
  }
  return request("POST", `/v1/collection/clusters/${pathPart("cluster_id", clusterId)}/split`, { json: options.body, expect: "json", signal: options.signal });
}

/**
 * Remove a face (a false detection)
 * The face leaves the collection (and its named cluster's gallery person); a detection's box is remembered, so later index runs do not bring it back.
 * `DELETE /v1/collection/faces/{face_id}`
 * @param {number} faceId a collection face id
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<null>}
 */
export async function removeCollectionFace(faceId, options = {}) {
  return request("DELETE", `/v1/collection/faces/${pathPart("face_id", faceId)}`, { expect: "none", signal: options.signal });
}

/**
 * Take a face out of its cluster
 * The face becomes unassigned; later cluster jobs never put it back with its former cluster's faces. When that cluster is named, the face is taken out of its gallery person.
 * `POST /v1/collection/faces/{face_id}/not-this-person`
 * @param {number} faceId a collection face id
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<NotThisPersonResponse>}
 */
export async function notThisPerson(faceId, options = {}) {
  return request("POST", `/v1/collection/faces/${pathPart("face_id", faceId)}/not-this-person`, { expect: "json", signal: options.signal });
}

/**
 * A face, cropped from its photo
 * The face's box with a margin, square, from the EXIF-rotated photo (black beyond its edge); like the photo itself, only from inside FACEATLAS_PHOTO_ROOTS (403 `photo_not_allowed`).
 * `GET /v1/collection/faces/{face_id}/thumbnail`
 * @param {number} faceId a collection face id
 * @param {{query?: {size?: number}, signal?: AbortSignal}} [options]
 * @returns {Promise<Blob>}
 */
export async function faceThumbnail(faceId, options = {}) {
  const qs = queryString(options.query, ["size"], []);
  return request("GET", `/v1/collection/faces/${pathPart("face_id", faceId)}/thumbnail${qs}`, { expect: "blob", signal: options.signal });
}

/**
 * The photos indexed
 * `GET /v1/collection/photos`
 * @param {{query?: {cluster?: number|null, limit?: number, offset?: number}, signal?: AbortSignal}} [options]
 * @returns {Promise<PhotosResponse>}
 */
export async function listPhotos(options = {}) {
  const qs = queryString(options.query, ["cluster", "limit", "offset"], []);
  return request("GET", `/v1/collection/photos${qs}`, { expect: "json", signal: options.signal });
}

/**
 * One photo and its faces
 * `GET /v1/collection/photos/{photo_id}`
 * @param {number} photoId a collection photo id
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<PhotoDetail>}
 */
export async function getPhoto(photoId, options = {}) {
  return request("GET", `/v1/collection/photos/${pathPart("photo_id", photoId)}`, { expect: "json", signal: options.signal });
}

/**
 * Add a face the detector missed
 * The face inside the box is aligned (from landmarks found in it, else from the box) and embedded; it stays in every later index run. 409 `face_exists` when the photo has a face there.
 * `POST /v1/collection/photos/{photo_id}/faces`
 * @param {number} photoId a collection photo id
 * @param {{body: DrawnFace, signal?: AbortSignal}} options
 * @returns {Promise<PhotoFace>}
 */
export async function drawFace(photoId, options = {}) {
  if (options.body === undefined || options.body === null) {
    throw new TypeError("drawFace needs a body");
  }
  return request("POST", `/v1/collection/photos/${pathPart("photo_id", photoId)}/faces`, { json: options.body, expect: "json", signal: options.signal });
}

/**
 * The photo file
 * The file as it is on disk (not EXIF-rotated: browsers rotate it themselves), if it lies inside FACEATLAS_PHOTO_ROOTS (403 `photo_not_allowed` if not) and its indexed folder.
 * `GET /v1/collection/photos/{photo_id}/image`
 * @param {number} photoId a collection photo id
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<Blob>}
 */
export async function photoImage(photoId, options = {}) {
  return request("GET", `/v1/collection/photos/${pathPart("photo_id", photoId)}/image`, { expect: "blob", signal: options.signal });
}

/**
 * The video file (HTTP Range requests answered)
 * The video as it is on disk, inside FACEATLAS_PHOTO_ROOTS (403 `photo_not_allowed` if not); one byte range (`Range: bytes=a-b`) is answered with 206, so players seek. An API key, or the `expires` and `sig` of a `/video-link`.
 * `GET /v1/collection/photos/{photo_id}/video`
 * @param {number} photoId a collection photo id
 * @param {{query?: {expires?: number|null, sig?: string|null}, signal?: AbortSignal}} [options]
 * @returns {Promise<Blob>}
 */
export async function photoVideo(photoId, options = {}) {
  const qs = queryString(options.query, ["expires", "sig"], []);
  return request("GET", `/v1/collection/photos/${pathPart("photo_id", photoId)}/video${qs}`, { expect: "blob", signal: options.signal });
}

/**
 * A link that plays a video without an API key
 * A `<video>` element sends no API key: this link to `/video` is signed for this one video and plays for an hour (until the service restarts). Append `#t=SECONDS` to start at a face.
 * `GET /v1/collection/photos/{photo_id}/video-link`
 * @param {number} photoId a collection photo id
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<VideoLink>}
 */
export async function videoLink(photoId, options = {}) {
  return request("GET", `/v1/collection/photos/${pathPart("photo_id", photoId)}/video-link`, { expect: "json", signal: options.signal });
}

/**
 * The review queue: questions to answer
 * The questions whose answers label the collection in the fewest answers, best first (see `faceatlas review`): merges of clusters just below the merge threshold, then faces least like their cluster.
 * `GET /v1/collection/review`
 * @param {{query?: {include_private?: boolean, limit?: number, skip?: Array<string>|null}, signal?: AbortSignal}} [options]
 * @returns {Promise<ReviewQueue>}
 */
export async function reviewQueue(options = {}) {
  const qs = queryString(options.query, ["include_private", "limit", "skip"], []);
  return request("GET", `/v1/collection/review${qs}`, { expect: "json", signal: options.signal });
}

/**
 * Accept clusters as one person
 * The batch accept ("all of these are Ada"): every cluster merges into `into`, one merge each, in order; a refused merge (two named people, a shared photo: 409) stops there, the merges before it stay. Returns `into` as it is then.
 * `POST /v1/collection/review/accept`
 * @param {{body: ReviewAcceptRequest, signal?: AbortSignal}} options
 * @returns {Promise<ReviewCluster>}
 */
export async function acceptClusters(options = {}) {
  if (options.body === undefined || options.body === null) {
    throw new TypeError("acceptClusters needs a body");
  }
  return request("POST", `/v1/collection/review/accept`, { json: options.body, expect: "json", signal: options.signal });
}

/**
 * Answer a review question
 * A yes or no is stored as a correction later cluster jobs honour (a merge, a face taken out, must- and cannot-links); a skip stores nothing (pass its key back as `skip` to the queue). A question the queue (with the same `include_private`) no longer asks, or whose faces moved from its `clusters`, is refused (409): ask the queue again.
 * `POST /v1/collection/review/answer`
 * @param {{body: ReviewAnswerRequest, signal?: AbortSignal}} options
 * @returns {Promise<ReviewAnswered>}
 */
export async function answerQuestion(options = {}) {
  if (options.body === undefined || options.body === null) {
    throw new TypeError("answerQuestion needs a body");
  }
  return request("POST", `/v1/collection/review/answer`, { json: options.body, expect: "json", signal: options.signal });
}

/**
 * A group question: which are this person?
 * The group question worth most now: an anchor face and its candidates, each a merge question (a person or face most likely the anchor's person) or a member question (a face of the anchor's own person least like the rest); see `faceatlas review`. Null when nothing is left to ask.
 * `GET /v1/collection/review/group`
 * @param {{query?: {include_private?: boolean, skip?: Array<number>|null}, signal?: AbortSignal}} [options]
 * @returns {Promise<ReviewGroupAsked>}
 */
export async function reviewGroup(options = {}) {
  const qs = queryString(options.query, ["include_private", "skip"], []);
  return request("GET", `/v1/collection/review/group${qs}`, { expect: "json", signal: options.signal });
}

/**
 * Answer a group question
 * `same`: the candidates that are the anchor's person; the others are not. The group the queue (with the same `include_private` and `skip`) would ask now must be the one shown (its anchor and its candidates, in order), else 409: ask again. A face of `same` not among `candidates`: 422.
 * `POST /v1/collection/review/group/answer`
 * @param {{body: ReviewGroupAnswerRequest, signal?: AbortSignal}} options
 * @returns {Promise<ReviewGroupAnswered>}
 */
export async function answerGroupQuestion(options = {}) {
  if (options.body === undefined || options.body === null) {
    throw new TypeError("answerGroupQuestion needs a body");
  }
  return request("POST", `/v1/collection/review/group/answer`, { json: options.body, expect: "json", signal: options.signal });
}

/**
 * Remove one enrolled face
 * `DELETE /v1/faces/{face_id}`
 * @param {number} faceId
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<null>}
 */
export async function removeFace(faceId, options = {}) {
  return request("DELETE", `/v1/faces/${pathPart("face_id", faceId)}`, { expect: "none", signal: options.signal });
}

/**
 * Who is in this image? (open set)
 * Every face, largest first, with its best candidates and a decision: a person or unknown.
 * `POST /v1/identify`
 * @param {{query?: {fpir?: number|null, k?: number}, body: {image: Blob}|FormData, signal?: AbortSignal}} options
 * @returns {Promise<IdentifyResponse>}
 */
export async function identify(options = {}) {
  const qs = queryString(options.query, ["fpir", "k"], []);
  if (options.body === undefined || options.body === null) {
    throw new TypeError("identify needs a body");
  }
  return request("POST", `/v1/identify${qs}`, { form: formData(options.body, {"image": "file"}), expect: "json", signal: options.signal });
}

/**
 * Jobs, newest first
 * `GET /v1/jobs`
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<JobsResponse>}
 */
export async function listJobs(options = {}) {
  return request("GET", `/v1/jobs`, { expect: "json", signal: options.signal });
}

/**
 * Cluster the faces
 * Groups the faces by person in the background: new faces join people or form new ones (`full`: every face again). Names and corrections hold.
 * `POST /v1/jobs/cluster`
 * @param {{body?: ClusterJobRequest|null, signal?: AbortSignal}} [options]
 * @returns {Promise<JobOut>}
 */
export async function submitCluster(options = {}) {
  return request("POST", `/v1/jobs/cluster`, { json: options.body, expect: "json", signal: options.signal });
}

/**
 * Index a folder of photos
 * Runs in the background (one job at a time): new and changed photos are analysed, files gone are forgotten; resumable. The folder must lie inside one of FACEATLAS_PHOTO_ROOTS.
 * `POST /v1/jobs/index`
 * @param {{body: IndexJobRequest, signal?: AbortSignal}} options
 * @returns {Promise<JobOut>}
 */
export async function submitIndex(options = {}) {
  if (options.body === undefined || options.body === null) {
    throw new TypeError("submitIndex needs a body");
  }
  return request("POST", `/v1/jobs/index`, { json: options.body, expect: "json", signal: options.signal });
}

/**
 * One job
 * `GET /v1/jobs/{job_id}`
 * @param {string} jobId
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<JobOut>}
 */
export async function getJob(jobId, options = {}) {
  return request("GET", `/v1/jobs/${pathPart("job_id", jobId)}`, { expect: "json", signal: options.signal });
}

/**
 * Cancel a job
 * A queued job is cancelled at once; a running one stops at its next step (`cancel_requested` meanwhile; an index job keeps the photos stored so far); a finished one stays as it is.
 * `DELETE /v1/jobs/{job_id}`
 * @param {string} jobId
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<JobOut>}
 */
export async function cancelJob(jobId, options = {}) {
  return request("DELETE", `/v1/jobs/${pathPart("job_id", jobId)}`, { expect: "json", signal: options.signal });
}

/**
 * API keys (no secrets)
 * `GET /v1/keys`
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<KeysResponse>}
 */
export async function listKeys(options = {}) {
  return request("GET", `/v1/keys`, { expect: "json", signal: options.signal });
}

/**
 * Create an API key
 * `POST /v1/keys`
 * @param {{body: KeyCreateRequest, signal?: AbortSignal}} options
 * @returns {Promise<KeyCreated>}
 */
export async function createKey(options = {}) {
  if (options.body === undefined || options.body === null) {
    throw new TypeError("createKey needs a body");
  }
  return request("POST", `/v1/keys`, { json: options.body, expect: "json", signal: options.signal });
}

/**
 * Revoke an API key
 * `DELETE /v1/keys/{key_id}`
 * @param {string} keyId
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<null>}
 */
export async function revokeKey(keyId, options = {}) {
  return request("DELETE", `/v1/keys/${pathPart("key_id", keyId)}`, { expect: "none", signal: options.signal });
}

/**
 * Everyone enrolled
 * `GET /v1/people`
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<PeopleResponse>}
 */
export async function listPeople(options = {}) {
  return request("GET", `/v1/people`, { expect: "json", signal: options.signal });
}

/**
 * One person
 * `GET /v1/people/{name}`
 * @param {string} name the person's name
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<PersonOut>}
 */
export async function getPerson(name, options = {}) {
  return request("GET", `/v1/people/${pathPart("name", name)}`, { expect: "json", signal: options.signal });
}

/**
 * Rename a person
 * `PATCH /v1/people/{name}`
 * @param {string} name the person's name
 * @param {{body: RenameRequest, signal?: AbortSignal}} options
 * @returns {Promise<PersonOut>}
 */
export async function rename(name, options = {}) {
  if (options.body === undefined || options.body === null) {
    throw new TypeError("rename needs a body");
  }
  return request("PATCH", `/v1/people/${pathPart("name", name)}`, { json: options.body, expect: "json", signal: options.signal });
}

/**
 * Delete a person and every embedding
 * Deletes the person from the gallery (every face and embedding, erased from disk: on PostgreSQL the tables are rewritten, and searches wait meanwhile) and takes the name off the collection's clusters (their faces stay clustered). `kept` says what remains stored, and why. 404 when neither the gallery nor a cluster has the name.
 * `DELETE /v1/people/{name}`
 * @param {string} name the person's name
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<DeletedResponse>}
 */
export async function deletePerson(name, options = {}) {
  return request("DELETE", `/v1/people/${pathPart("name", name)}`, { expect: "json", signal: options.signal });
}

/**
 * Everything stored about a person, as one .zip archive (GDPR Art. 15/20)
 * person.json (faces, boxes, photos, corrections, enrolled gallery faces), embeddings.npy and gallery_embeddings.npy (float32), faces/<id>.jpg crops (only of photos inside FACEATLAS_PHOTO_ROOTS; the others are listed), README.txt. 404 when no store has the name.
 * `GET /v1/people/{name}/export`
 * @param {string} name the person's name (case is ignored)
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<Blob>}
 */
export async function getPeopleByNameExport(name, options = {}) {
  return request("GET", `/v1/people/${pathPart("name", name)}/export`, { expect: "blob", signal: options.signal });
}

/**
 * A person's faces
 * `GET /v1/people/{name}/faces`
 * @param {string} name the person's name
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<PersonFacesResponse>}
 */
export async function personFaces(name, options = {}) {
  return request("GET", `/v1/people/${pathPart("name", name)}/faces`, { expect: "json", signal: options.signal });
}

/**
 * Enrol faces
 * Creates the person if needed (names: Unicode text, NFC-normalised, surrounding spaces dropped; no control characters, no `/`, not `.` or `..`, at most 100 characters). Each image gives one face; skipped images say why. When no face is added and an image was refused, nothing changes (a new person is not created): 422 with every image's reason.
 * `POST /v1/people/{name}/faces`
 * @param {string} name the person's name
 * @param {{query?: {face?: number|null}, body: {images: Array<Blob>}|FormData, signal?: AbortSignal}} options
 * @returns {Promise<EnrollResponse>}
 */
export async function enroll(name, options = {}) {
  const qs = queryString(options.query, ["face"], []);
  if (options.body === undefined || options.body === null) {
    throw new TypeError("enroll needs a body");
  }
  return request("POST", `/v1/people/${pathPart("name", name)}/faces${qs}`, { form: formData(options.body, {"images": "files"}), expect: "json", signal: options.signal });
}

/**
 * Forget a person everywhere (gallery, collection faces, sidecars), erased from disk
 * Removes every gallery person and every collection cluster of that name (case ignored) with all their faces, embeddings and corrections, takes their regions out of the sidecars faceatlas wrote, and erases the deleted bytes (SQLite: secure_delete + WAL emptied; PostgreSQL: VACUUM FULL). Their face thumbnails answer 404 from now on; browsers may keep cached copies for an hour. 404 when no store has the name.
 * `POST /v1/people/{name}/forget`
 * @param {string} name the person's name (case is ignored)
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<ForgetResponse>}
 */
export async function forget(name, options = {}) {
  return request("POST", `/v1/people/${pathPart("name", name)}/forget`, { expect: "json", signal: options.signal });
}

/**
 * Merge a person into another
 * Every face of ``name`` moves to ``into``; ``name`` is gone afterwards.
 * `POST /v1/people/{name}/merge`
 * @param {string} name the person's name
 * @param {{body: MergeRequest, signal?: AbortSignal}} options
 * @returns {Promise<PersonOut>}
 */
export async function merge(name, options = {}) {
  if (options.body === undefined || options.body === null) {
    throw new TypeError("merge needs a body");
  }
  return request("POST", `/v1/people/${pathPart("name", name)}/merge`, { json: options.body, expect: "json", signal: options.signal });
}

/**
 * Mark a person private (or not)
 * Marks the gallery person and the collection cluster of that name, whichever exist (404 if neither). A private person is left out of every answer to a key that may not see them.
 * `PUT /v1/people/{name}/private`
 * @param {string} name the person's name
 * @param {{body: PrivateRequest, signal?: AbortSignal}} options
 * @returns {Promise<PrivacyOut>}
 */
export async function setPersonPrivate(name, options = {}) {
  if (options.body === undefined || options.body === null) {
    throw new TypeError("setPersonPrivate needs a body");
  }
  return request("PUT", `/v1/people/${pathPart("name", name)}/private`, { json: options.body, expect: "json", signal: options.signal });
}

/**
 * Find every face like this one
 * Every face of the collection, named or not, ranked by similarity to the probe's face, and an open-set answer: `matched` false means no face reaches the threshold calibrated for `fpir` over the faces searched. Filters combine with AND; a photo without a capture time is left out by a date filter. Give `image` (multipart) or `face_id`, not both. Private people's faces are left out for a key that may not see them (and a filter naming one answers as for a missing one).
 * `POST /v1/search/faces`
 * @param {{body?: {cluster?: Array<number>|null, face_id?: number|null, folder?: string|null, fpir?: number, image?: Blob|null, k?: number, person?: string|null, taken_from?: string|null, taken_to?: string|null, unnamed?: boolean}|FormData, signal?: AbortSignal}} [options]
 * @returns {Promise<FaceSearchResponse>}
 */
export async function searchFaces(options = {}) {
  return request("POST", `/v1/search/faces`, { form: formData(options.body, {"cluster": "values", "face_id": "value", "folder": "value", "fpir": "value", "image": "file", "k": "value", "person": "value", "taken_from": "value", "taken_to": "value", "unnamed": "value"}), expect: "json", signal: options.signal });
}

/**
 * Live streams, newest first
 * `GET /v1/streams`
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<StreamsResponse>}
 */
export async function listStreams(options = {}) {
  return request("GET", `/v1/streams`, { expect: "json", signal: options.signal });
}

/**
 * Track a live camera or stream
 * The URL is read on a thread of its own until `DELETE /v1/streams/{id}`, reconnecting with back-off when it drops, stalls or does not answer. Its events: `GET /v1/streams/{id}/events` (server-sent events), and the `webhook`, if given, POSTed each event as JSON.
 * `POST /v1/streams`
 * @param {{body: StreamRequest, signal?: AbortSignal}} options
 * @returns {Promise<StreamOut>}
 */
export async function startStream(options = {}) {
  if (options.body === undefined || options.body === null) {
    throw new TypeError("startStream needs a body");
  }
  return request("POST", `/v1/streams`, { json: options.body, expect: "json", signal: options.signal });
}

/**
 * One live stream's state
 * Its state (`connecting`, `running`, `reconnecting`, `stopped`, `failed`), counts, last error and latest events.
 * `GET /v1/streams/{stream_id}`
 * @param {string} streamId
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<StreamOut>}
 */
export async function getStream(streamId, options = {}) {
  return request("GET", `/v1/streams/${pathPart("stream_id", streamId)}`, { expect: "json", signal: options.signal });
}

/**
 * Stop a live stream
 * Stops its thread; the tracks still open are closed first (`track_closed` events to its subscribers and webhook). Returns its final state; it is then forgotten.
 * `DELETE /v1/streams/{stream_id}`
 * @param {string} streamId
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<StreamOut>}
 */
export async function stopStream(streamId, options = {}) {
  return request("DELETE", `/v1/streams/${pathPart("stream_id", streamId)}`, { expect: "json", signal: options.signal });
}

/**
 * A live stream's events (server-sent events)
 * Each event as it happens: `track_started`, `person_seen`, `unknown_person`, `track_closed` and `stream_state`; the data is JSON (`kind`, `stream`, `time`, `wall_time`, `track`, `person`, `score`, `box`). Resuming (`Last-Event-ID` or `after`) replays the recent events after that id.
 * `GET /v1/streams/{stream_id}/events`
 * @param {string} streamId
 * @param {{query?: {after?: number|null}, signal?: AbortSignal}} [options]
 * @returns {Promise<string>}
 */
export async function streamEvents(streamId, options = {}) {
  const qs = queryString(options.query, ["after"], []);
  return request("GET", `/v1/streams/${pathPart("stream_id", streamId)}/events${qs}`, { expect: "text", signal: options.signal });
}

/**
 * Are two faces the same person?
 * Each side is an uploaded image (its largest face) or an enrolled face's id.
 * `POST /v1/verify`
 * @param {{body?: {face_a?: number|null, face_b?: number|null, far?: number|null, image_a?: Blob|null, image_b?: Blob|null}|FormData, signal?: AbortSignal}} [options]
 * @returns {Promise<VerifyResponse>}
 */
export async function verify(options = {}) {
  return request("POST", `/v1/verify`, { form: formData(options.body, {"face_a": "value", "face_b": "value", "far": "value", "image_a": "file", "image_b": "file"}), expect: "json", signal: options.signal });
}

/**
 * Track the faces of a video clip (a job)
 * The clip is tracked in the background (one job at a time, with index and cluster jobs): follow it at `GET /v1/jobs/{id}` (progress counts the video's frames); its result lists every track (`start`, `end` seconds, `frames`, `person` or null, `score`, `box` of its best frame). A clip the decoder cannot read fails the job with the reason.
 * `POST /v1/videos`
 * @param {{query?: {detect_every?: number, fpir?: number|null, fps?: number|null}, body: {video: Blob}|FormData, signal?: AbortSignal}} options
 * @returns {Promise<JobOut>}
 */
export async function uploadVideo(options = {}) {
  const qs = queryString(options.query, ["detect_every", "fpir", "fps"], []);
  if (options.body === undefined || options.body === null) {
    throw new TypeError("uploadVideo needs a body");
  }
  return request("POST", `/v1/videos${qs}`, { form: formData(options.body, {"video": "file"}), expect: "json", signal: options.signal });
}

/** Every operation, by method and path (path parameters as {}). */
export const routes = Object.freeze({
  "GET /healthz": health,
  "GET /metrics": metrics,
  "GET /readyz": ready,
  "POST /v1/analyze": analyze,
  "GET /v1/collection/clusters": listClusters,
  "GET /v1/collection/clusters/{}": getCluster,
  "PATCH /v1/collection/clusters/{}": nameCluster,
  "PUT /v1/collection/clusters/{}/born": setBirthDate,
  "POST /v1/collection/clusters/{}/merge": mergeClusters,
  "PUT /v1/collection/clusters/{}/person": setLifeStage,
  "PUT /v1/collection/clusters/{}/private": setClusterPrivate,
  "POST /v1/collection/clusters/{}/split": splitCluster,
  "DELETE /v1/collection/faces/{}": removeCollectionFace,
  "POST /v1/collection/faces/{}/not-this-person": notThisPerson,
  "GET /v1/collection/faces/{}/thumbnail": faceThumbnail,
  "GET /v1/collection/photos": listPhotos,
  "GET /v1/collection/photos/{}": getPhoto,
  "POST /v1/collection/photos/{}/faces": drawFace,
  "GET /v1/collection/photos/{}/image": photoImage,
  "GET /v1/collection/photos/{}/video": photoVideo,
  "GET /v1/collection/photos/{}/video-link": videoLink,
  "GET /v1/collection/review": reviewQueue,
  "POST /v1/collection/review/accept": acceptClusters,
  "POST /v1/collection/review/answer": answerQuestion,
  "GET /v1/collection/review/group": reviewGroup,
  "POST /v1/collection/review/group/answer": answerGroupQuestion,
  "DELETE /v1/faces/{}": removeFace,
  "POST /v1/identify": identify,
  "GET /v1/jobs": listJobs,
  "POST /v1/jobs/cluster": submitCluster,
  "POST /v1/jobs/index": submitIndex,
  "GET /v1/jobs/{}": getJob,
  "DELETE /v1/jobs/{}": cancelJob,
  "GET /v1/keys": listKeys,
  "POST /v1/keys": createKey,
  "DELETE /v1/keys/{}": revokeKey,
  "GET /v1/people": listPeople,
  "GET /v1/people/{}": getPerson,
  "PATCH /v1/people/{}": rename,
  "DELETE /v1/people/{}": deletePerson,
  "GET /v1/people/{}/export": getPeopleByNameExport,
  "GET /v1/people/{}/faces": personFaces,
  "POST /v1/people/{}/faces": enroll,
  "POST /v1/people/{}/forget": forget,
  "POST /v1/people/{}/merge": merge,
  "PUT /v1/people/{}/private": setPersonPrivate,
  "POST /v1/search/faces": searchFaces,
  "GET /v1/streams": listStreams,
  "POST /v1/streams": startStream,
  "GET /v1/streams/{}": getStream,
  "DELETE /v1/streams/{}": stopStream,
  "GET /v1/streams/{}/events": streamEvents,
  "POST /v1/verify": verify,
  "POST /v1/videos": uploadVideo,
});
