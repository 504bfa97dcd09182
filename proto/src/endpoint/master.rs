//! The master's endpoints. Failures answer `{"error", "message"}`
//! ([`crate::ErrorBody`]) with the status of the kind.

use super::RawBytes;
use super::{endpoints, HtmlPage, MetricsText, Redirect};
use crate::auth::user::{LoginAnswer, LoginRequest};
use crate::ids::InodeId;
use crate::wire::chunks::{
    self, BadReplica, ChunkLocations, ChunkserverInfo, HeartbeatResponse, LeaseRequest, LocateQuery, NodeRequest, ReplicationStatus, SafeModeRequest,
    WriteLease,
};
use crate::wire::dashboard::{BrowseQuery, EventsPage, EventsQuery, FileQuery, FileView, HistoryPage, Listing, LoginQuery, NodeRow, Overview, Work};
use crate::wire::namespace::{
    AppendRequest, AppendReservation, Attr, Changed, CheckReport, ClusterInfo, CreateRequest, DeleteRequest, Done, DropPrivilegesRequest, FsStats, FsckPage,
    FsckQuery, LinkRequest, ListQuery, ListResponse, LookupQuery, Made, MkdirRequest, MknodRequest, OpenFilesRequest, OpenRequest, ReadlinkResponse,
    RemoveRequest, RenameRequest, SetattrRequest, StatQuery, SymlinkRequest,
};
use crate::wire::users::{AddUserRequest, CallerInfo, RotateRequest, TokenAnswer, TokenRef, TokenRequest, UserInfo, UserName};
use crate::wire::xattrs::{RemoveXattrRequest, SetXattrRequest, XattrNames, XattrQuery, XattrValue};

endpoints! {
    // The namespace.
    /// A directory.
    Mkdir: POST "/v1/mkdir", User, Path = (), Query = (), Request = MkdirRequest, Response = Made;
    /// A file (or, not exclusive, the one already there).
    Create: POST "/v1/create", User, Path = (), Query = (), Request = CreateRequest, Response = Made;
    Symlink: POST "/v1/symlink", User, Path = (), Query = (), Request = SymlinkRequest, Response = Made;
    /// A hard link: a new name for a file.
    Link: POST "/v1/link", User, Path = (), Query = (), Request = LinkRequest, Response = Made;
    /// A FIFO, socket or device node.
    Mknod: POST "/v1/mknod", User, Path = (), Query = (), Request = MknodRequest, Response = Made;
    Rename: POST "/v1/rename", User, Path = (), Query = (), Request = RenameRequest, Response = Changed;
    /// A file or symlink.
    Unlink: POST "/v1/unlink", User, Path = (), Query = (), Request = RemoveRequest, Response = Changed;
    /// An empty directory.
    Rmdir: POST "/v1/rmdir", User, Path = (), Query = (), Request = RemoveRequest, Response = Changed;
    /// Anything; a non-empty directory with `recursive`.
    Delete: POST "/v1/delete", User, Path = (), Query = (), Request = DeleteRequest, Response = Changed;
    /// Mode, owner, times, length or replication: the new attributes.
    Setattr: POST "/v1/setattr", User, Path = (), Query = (), Request = SetattrRequest, Response = Attr;
    /// By path or inode.
    Stat: GET "/v1/stat", User, Path = (), Query = StatQuery, Request = (), Response = Attr;
    StatInode: GET "/v1/inodes/{id}", User, Path = InodeId, Query = (), Request = (), Response = Attr;
    /// A name in a directory.
    Lookup: GET "/v1/lookup", User, Path = (), Query = LookupQuery, Request = (), Response = Attr;
    /// One page of a directory.
    List: GET "/v1/list", User, Path = (), Query = ListQuery, Request = (), Response = ListResponse;
    Readlink: GET "/v1/readlink", User, Path = (), Query = StatQuery, Request = (), Response = ReadlinkResponse;
    /// A file's attributes, and the caller's session holds it open.
    Open: POST "/v1/open", User, Path = (), Query = (), Request = OpenRequest, Response = Attr;
    /// Every file a client session holds open (its keepalive).
    OpenFiles: POST "/v1/open_files", User, Path = (), Query = (), Request = OpenFilesRequest, Response = Done;
    /// One extended attribute's value.
    GetXattr: GET "/v1/xattr", User, Path = (), Query = XattrQuery, Request = (), Response = XattrValue;
    /// The names of an inode's extended attributes the caller may see.
    ListXattrs: GET "/v1/xattrs", User, Path = (), Query = XattrQuery, Request = (), Response = XattrNames;
    /// Sets an extended attribute: the inode's new attributes.
    SetXattr: POST "/v1/xattr", User, Path = (), Query = (), Request = SetXattrRequest, Response = Attr;
    RemoveXattr: POST "/v1/xattr/remove", User, Path = (), Query = (), Request = RemoveXattrRequest, Response = Attr;
    /// The file system's counters.
    Fs: GET "/v1/fs", User, Path = (), Query = (), Request = (), Response = FsStats;

    // Chunks.
    /// Where a run of a file's chunks are, with read tokens.
    Locate: GET "/v1/chunks", User, Path = (), Query = LocateQuery, Request = (), Response = ChunkLocations;
    /// A write lease on one chunk (created if new).
    Lease: POST "/v1/chunks/lease", User, Path = (), Query = (), Request = LeaseRequest, Response = WriteLease;
    /// A replica that failed its checksums: acted on when a chunkserver
    /// signs it, checked first when a client sends it with its token.
    ReportBad: POST "/v1/chunks/bad", Public, Path = (), Query = (), Request = BadReplica, Response = Done;
    /// How far a writer got: the file's length grows to it.
    CommitLength: POST "/v1/commit_length", User, Path = (), Query = (), Request = chunks::CommitLength, Response = Attr;
    /// What a write takes away (setuid/setgid, capabilities), taken now:
    /// the file's attributes after.
    DropPrivileges: POST "/v1/drop_privileges", User, Path = (), Query = (), Request = DropPrivilegesRequest, Response = Attr;
    /// A record append's place in the file.
    Append: POST "/v1/append", User, Path = (), Query = (), Request = AppendRequest, Response = AppendReservation;
    Chunkservers: GET "/v1/chunkservers", User, Path = (), Query = (), Request = (), Response = Vec<ChunkserverInfo>;
    /// A chunkserver's heartbeat (with its full report now and then); the
    /// answer carries replicas to delete and the cluster's token keys.
    Heartbeat: POST "/v1/heartbeat", Internal, Path = (), Query = (), Request = chunks::Heartbeat, Response = HeartbeatResponse;

    // Administration.
    Login: POST "/v1/auth/login", Public, Path = (), Query = (), Request = LoginRequest, Response = LoginAnswer;
    WhoAmI: GET "/v1/auth/whoami", User, Path = (), Query = (), Request = (), Response = CallerInfo;
    /// A WebHDFS delegation token for the caller (`dfs fetchdt`).
    IssueToken: POST "/v1/auth/delegation_token", User, Path = (), Query = (), Request = TokenRequest, Response = TokenAnswer;
    /// A day more for a token (its renewer only): its new expiry.
    RenewToken: POST "/v1/auth/delegation_token/renew", User, Path = (), Query = (), Request = TokenRef, Response = TokenAnswer;
    /// Ends a token (its owner or renewer).
    CancelToken: POST "/v1/auth/delegation_token/cancel", User, Path = (), Query = (), Request = TokenRef, Response = Done;
    Users: GET "/v1/admin/users", Admin, Path = (), Query = (), Request = (), Response = Vec<UserInfo>;
    AddUser: POST "/v1/admin/users/add", Admin, Path = (), Query = (), Request = AddUserRequest, Response = UserInfo;
    RemoveUser: POST "/v1/admin/users/remove", Admin, Path = (), Query = (), Request = UserName, Response = Done;
    RotateUser: POST "/v1/admin/users/rotate", User, Path = (), Query = (), Request = RotateRequest, Response = UserInfo;

    Cluster: GET "/v1/cluster", User, Path = (), Query = (), Request = (), Response = ClusterInfo;
    /// The namespace's consistency check.
    Check: GET "/v1/admin/check", Admin, Path = (), Query = (), Request = (), Response = CheckReport;
    /// A consistent metadata backup: a tar stream of a checkpoint's files
    /// and its manifest, last (`wire::backup`).
    Backup: GET "/v1/admin/backup", Admin, Path = (), Query = (), Request = (), Response = RawBytes;
    /// One page of fsck under a path.
    Fsck: GET "/v1/admin/fsck", Admin, Path = (), Query = FsckQuery, Request = (), Response = FsckPage;
    Replication: GET "/v1/admin/replication", Admin, Path = (), Query = (), Request = (), Response = ReplicationStatus;
    /// Ends safe mode now (`{"leave": true}`).
    SafeMode: POST "/v1/admin/safemode", Admin, Path = (), Query = (), Request = SafeModeRequest, Response = ReplicationStatus;
    Decommission: POST "/v1/admin/decommission", Admin, Path = (), Query = (), Request = NodeRequest, Response = Done;
    Recommission: POST "/v1/admin/recommission", Admin, Path = (), Query = (), Request = NodeRequest, Response = Done;

    // The dashboard: pages, and the JSON they are drawn from.
    OverviewPage: GET "/", Public, Path = (), Query = (), Request = (), Response = HtmlPage, Error = HtmlPage;
    ChunkserversPage: GET "/chunkservers", Public, Path = (), Query = (), Request = (), Response = HtmlPage, Error = HtmlPage;
    BrowsePage: GET "/browse", Public, Path = (), Query = BrowseQuery, Request = (), Response = HtmlPage, Error = HtmlPage;
    FilePage: GET "/file", Public, Path = (), Query = FileQuery, Request = (), Response = HtmlPage, Error = HtmlPage;
    WorkPage: GET "/work", Public, Path = (), Query = (), Request = (), Response = HtmlPage, Error = HtmlPage;
    EventsHtml: GET "/events", Public, Path = (), Query = (), Request = (), Response = HtmlPage, Error = HtmlPage;
    /// A whole file: sends the browser to a chunkserver that holds its
    /// first chunk (`/files` there).
    LoginPage: GET "/login", Public, Path = (), Query = LoginQuery, Request = (), Response = HtmlPage, Error = HtmlPage;
    LoginForm: POST "/login", Public, Path = (), Query = (), Request = RawBytes, Response = Redirect, Error = HtmlPage;
    Logout: GET "/logout", Public, Path = (), Query = (), Request = (), Response = Redirect;
    Download: GET "/download", Public, Path = (), Query = FileQuery, Request = (), Response = Redirect;
    Metrics: GET "/metrics", Public, Path = (), Query = (), Request = (), Response = MetricsText;
    DashOverview: GET "/v1/dashboard/overview", Public, Path = (), Query = (), Request = (), Response = Overview;
    DashChunkservers: GET "/v1/dashboard/chunkservers", Public, Path = (), Query = (), Request = (), Response = Vec<NodeRow>;
    DashWork: GET "/v1/dashboard/work", Public, Path = (), Query = (), Request = (), Response = Work;
    /// Newest first, after an id.
    DashEvents: GET "/v1/dashboard/events", Public, Path = (), Query = EventsQuery, Request = (), Response = EventsPage;
    /// An hour of samples, oldest first.
    DashHistory: GET "/v1/dashboard/history", Public, Path = (), Query = (), Request = (), Response = HistoryPage;
    DashBrowse: GET "/v1/dashboard/browse", Public, Path = (), Query = BrowseQuery, Request = (), Response = Listing;
    DashFile: GET "/v1/dashboard/file", Public, Path = (), Query = FileQuery, Request = (), Response = FileView;
}
